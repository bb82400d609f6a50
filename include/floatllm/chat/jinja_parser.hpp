// Parses the tokens of a Jinja template into a tree of statements and expressions, with Jinja's
// operator precedence. Unknown tags, filters and tests are errors here, before anything renders.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "floatllm/chat/jinja_lexer.hpp"
#include "floatllm/chat/jinja_value.hpp"

namespace floatllm::jinja {

struct Expr {
  enum class Kind {
    Literal,      // literal
    Name,         // name
    List,         // children = items; a tuple when `tuple` is set
    Dict,         // children = key0, value0, key1, value1, ...
    GetAttr,      // children[0].name
    GetItem,      // children[0][children[1]]
    Slice,        // children[0][children[1]:children[2]:children[3]], absent parts null
    Call,         // children[0](children[1..]), arg_names parallel to the arguments
    Filter,       // children[0] | name(children[1..])
    Test,         // children[0] is [not] name(children[1..])
    Not,          // not children[0]
    Negate,       // -children[0]
    Binary,       // children[0] name children[1], name one of + - * / // % ** ~
    Compare,      // children[0] ops[0] children[1] ops[1] ...
    And,          // children[0] and children[1]
    Or,           // children[0] or children[1]
    Conditional,  // children[0] if children[1] else children[2] (null: undefined)
  };
  Expr(Kind k, Location w) : kind(k), where(w) {}

  Kind kind;
  Location where;
  Value literal;
  std::string name;
  std::vector<std::unique_ptr<Expr>> children;
  std::vector<std::string> ops;
  std::vector<std::string> arg_names;  // "" for a positional argument
  bool negated = false;
  bool tuple = false;
  int depth = 1;  // of the tree under this node, bounded so that no walk can exhaust the stack
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  enum class Kind {
    Text,      // text
    Output,    // {{ exprs[0] }}
    If,        // exprs = conditions, bodies = one per condition plus an optional else
    For,       // for targets in exprs[0] [if exprs[1]]: bodies[0], else bodies[1]
    Set,       // set targets = exprs[0], or set targets[0].attribute = exprs[0]
    SetBlock,  // set targets[0] %} bodies[0] {% endset
    Macro,     // macro name(params = exprs (null: no default)): bodies[0]
    Break,
    Continue,
    Block,  // bodies[0] rendered in place ({% generation %})
  };
  Stmt(Kind k, Location w) : kind(k), where(w) {}

  Kind kind;
  Location where;
  std::string text;
  std::string name;
  std::string attribute;
  std::vector<std::string> targets;
  std::vector<std::string> params;
  std::vector<std::unique_ptr<Expr>> exprs;
  std::vector<Body> bodies;
};

inline const std::set<std::string, std::less<>>& known_filters() {
  static const std::set<std::string, std::less<>> names{
      "abs",     "attr",     "center", "format",     "capitalize", "count",    "d",
      "default", "dictsort", "e",      "escape",     "first",      "float",    "indent",
      "int",     "items",    "join",   "last",       "length",     "list",     "lower",
      "map",     "max",      "min",    "reject",     "rejectattr", "replace",  "reverse",
      "round",   "safe",     "select", "selectattr", "sort",       "string",   "sum",
      "title",   "tojson",   "trim",   "unique",     "upper",      "wordcount"};
  return names;
}

inline const std::set<std::string, std::less<>>& known_tests() {
  static const std::set<std::string, std::less<>> names{
      "boolean", "callable",  "defined", "divisibleby", "eq",          "equalto",  "escaped",
      "even",    "false",     "float",   "ge",          "greaterthan", "gt",       "in",
      "integer", "iterable",  "le",      "lessthan",    "lower",       "lt",       "mapping",
      "ne",      "none",      "number",  "odd",         "sameas",      "sequence", "string",
      "true",    "undefined", "upper",   "=="};
  return names;
}

struct ParserLimits {
  int max_nesting = 128;           // parentheses, brackets and blocks inside each other
  int max_expression_depth = 256;  // operator chains such as a + b + c count one level each
};

class Parser {
 public:
  Parser(std::vector<Token> tokens, ParserLimits limits)
      : tokens_(std::move(tokens)), limits_(limits) {}

  Body parse_template() {
    Body body = parse_body({});
    if (peek().kind != TokenKind::End) fail_at(peek().where, "unexpected '", peek().text, "'");
    return body;
  }

 private:
  class Nesting {
   public:
    Nesting(Parser& parser, Location where) : parser_(parser) {
      if (++parser_.nesting_ > parser_.limits_.max_nesting)
        fail_at(where, "template nests deeper than ", parser_.limits_.max_nesting, " levels");
    }
    ~Nesting() { --parser_.nesting_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;

   private:
    Parser& parser_;
  };

  const Token& peek(size_t ahead = 0) const {
    return tokens_[std::min(position_ + ahead, tokens_.size() - 1)];
  }
  const Token& next() {
    const Token& token = peek();
    if (position_ < tokens_.size() - 1) ++position_;
    return token;
  }
  bool at_operator(std::string_view op, size_t ahead = 0) const {
    return peek(ahead).kind == TokenKind::Operator && peek(ahead).text == op;
  }
  bool at_name(std::string_view name, size_t ahead = 0) const {
    return peek(ahead).kind == TokenKind::Name && peek(ahead).text == name;
  }
  static std::string describe(const Token& token) {
    switch (token.kind) {
      case TokenKind::End:
        return "end of template";
      case TokenKind::Text:
        return "text";
      case TokenKind::VariableBegin:
        return "'{{'";
      case TokenKind::VariableEnd:
        return "'}}'";
      case TokenKind::BlockBegin:
        return "'{%'";
      case TokenKind::BlockEnd:
        return "'%}'";
      case TokenKind::String:
        return "a string";
      default:
        return "'" + token.text + "'";
    }
  }
  void expect_operator(std::string_view op) {
    if (!at_operator(op)) fail_at(peek().where, "expected '", op, "', found ", describe(peek()));
    next();
  }
  std::string expect_name() {
    if (peek().kind != TokenKind::Name)
      fail_at(peek().where, "expected a name, found ", describe(peek()));
    return next().text;
  }
  void expect_block_end() {
    if (peek().kind != TokenKind::BlockEnd)
      fail_at(peek().where, "expected '%}', found ", describe(peek()));
    next();
  }

  // Parses statements until `{% <one of end_tags>`, which it consumes up to and including the
  // tag name, leaving that name in last_end_tag_.
  Body parse_body(const std::vector<std::string_view>& end_tags) {
    Body body;
    for (;;) {
      const Token& token = peek();
      if (token.kind == TokenKind::End) {
        if (!end_tags.empty())
          fail_at(token.where, "unexpected end of template: missing {% ", end_tags.back(), " %}");
        return body;
      }
      if (token.kind == TokenKind::Text) {
        auto stmt = std::make_unique<Stmt>(Stmt::Kind::Text, token.where);
        stmt->text = token.text;
        body.push_back(std::move(stmt));
        next();
      } else if (token.kind == TokenKind::VariableBegin) {
        next();
        auto stmt = std::make_unique<Stmt>(Stmt::Kind::Output, token.where);
        stmt->exprs.push_back(parse_expression());
        if (peek().kind != TokenKind::VariableEnd)
          fail_at(peek().where, "expected '}}', found ", describe(peek()));
        next();
        body.push_back(std::move(stmt));
      } else if (token.kind == TokenKind::BlockBegin) {
        const Token& tag = peek(1);
        if (tag.kind == TokenKind::Name) {
          for (std::string_view end : end_tags) {
            if (tag.text == end) {
              next();
              last_end_tag_ = next().text;
              return body;
            }
          }
        }
        body.push_back(parse_statement());
      } else {
        fail_at(token.where, "unexpected ", describe(token));
      }
    }
  }

  std::unique_ptr<Stmt> parse_statement() {
    const Location where = next().where;
    const Nesting nesting(*this, where);
    const Token& tag = peek();
    if (tag.kind != TokenKind::Name) fail_at(tag.where, "expected a tag name after '{%'");
    const std::string name = next().text;
    if (name == "if") return parse_if(where);
    if (name == "for") return parse_for(where);
    if (name == "set") return parse_set(where);
    if (name == "macro") return parse_macro(where);
    if (name == "generation") {
      expect_block_end();
      auto stmt = std::make_unique<Stmt>(Stmt::Kind::Block, where);
      stmt->bodies.push_back(parse_body({"endgeneration"}));
      expect_block_end();
      return stmt;
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) fail_at(where, "'", name, "' outside a for loop");
      expect_block_end();
      return std::make_unique<Stmt>(name == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue,
                                    where);
    }
    if (name == "include" || name == "import" || name == "extends" || name == "from" ||
        name == "block" || name == "call" || name == "filter" || name == "raw" || name == "with" ||
        name == "do")
      fail_at(tag.where, "the '", name, "' tag is not supported");
    fail_at(tag.where, "unexpected tag '", name, "'");
  }

  std::unique_ptr<Stmt> parse_if(Location where) {
    auto stmt = std::make_unique<Stmt>(Stmt::Kind::If, where);
    stmt->exprs.push_back(parse_expression());
    expect_block_end();
    for (;;) {
      stmt->bodies.push_back(parse_body({"elif", "else", "endif"}));
      if (last_end_tag_ == "elif") {
        stmt->exprs.push_back(parse_expression());
        expect_block_end();
      } else if (last_end_tag_ == "else") {
        expect_block_end();
        stmt->bodies.push_back(parse_body({"endif"}));
        expect_block_end();
        return stmt;
      } else {
        expect_block_end();
        return stmt;
      }
    }
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> targets{expect_name()};
    while (at_operator(",")) {
      next();
      targets.push_back(expect_name());
    }
    return targets;
  }

  std::unique_ptr<Stmt> parse_for(Location where) {
    auto stmt = std::make_unique<Stmt>(Stmt::Kind::For, where);
    stmt->targets = parse_targets();
    if (!at_name("in")) fail_at(peek().where, "expected 'in' in a for loop");
    next();
    stmt->exprs.push_back(parse_expression(false));
    if (at_name("if")) {
      next();
      stmt->exprs.push_back(parse_expression(false));
    }
    if (at_name("recursive")) fail_at(peek().where, "recursive for loops are not supported");
    expect_block_end();
    ++loop_depth_;
    stmt->bodies.push_back(parse_body({"else", "endfor"}));
    --loop_depth_;
    if (last_end_tag_ == "else") {
      expect_block_end();
      stmt->bodies.push_back(parse_body({"endfor"}));
    }
    expect_block_end();
    return stmt;
  }

  std::unique_ptr<Stmt> parse_set(Location where) {
    std::vector<std::string> targets = parse_targets();
    std::string attribute;
    if (targets.size() == 1 && at_operator(".")) {
      next();
      attribute = expect_name();
    }
    if (!at_operator("=")) {
      if (targets.size() != 1 || !attribute.empty())
        fail_at(peek().where, "expected '=' in a set tag");
      expect_block_end();
      auto stmt = std::make_unique<Stmt>(Stmt::Kind::SetBlock, where);
      stmt->targets = std::move(targets);
      stmt->bodies.push_back(parse_body({"endset"}));
      expect_block_end();
      return stmt;
    }
    next();
    auto stmt = std::make_unique<Stmt>(Stmt::Kind::Set, where);
    stmt->targets = std::move(targets);
    stmt->attribute = std::move(attribute);
    stmt->exprs.push_back(parse_tuple_or_expression());
    expect_block_end();
    return stmt;
  }

  std::unique_ptr<Stmt> parse_macro(Location where) {
    auto stmt = std::make_unique<Stmt>(Stmt::Kind::Macro, where);
    stmt->name = expect_name();
    expect_operator("(");
    while (!at_operator(")")) {
      stmt->params.push_back(expect_name());
      if (at_operator("=")) {
        next();
        stmt->exprs.push_back(parse_expression());
      } else {
        stmt->exprs.push_back(nullptr);
      }
      if (!at_operator(")")) expect_operator(",");
    }
    next();
    expect_block_end();
    const int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;
    stmt->bodies.push_back(parse_body({"endmacro"}));
    loop_depth_ = saved_loop_depth;
    if (peek().kind == TokenKind::Name && peek().text == stmt->name) next();
    expect_block_end();
    return stmt;
  }

  static std::unique_ptr<Expr> make(Expr::Kind kind, Location where) {
    return std::make_unique<Expr>(kind, where);
  }

  // Records the depth of a node whose children are in place; long chains (a + b + c ...,
  // x.a.b.c ..., x | f | g ...) grow trees without nesting, and are bounded here.
  std::unique_ptr<Expr> sealed(std::unique_ptr<Expr> node) {
    for (const auto& child : node->children)
      if (child) node->depth = std::max(node->depth, child->depth + 1);
    if (node->depth > limits_.max_expression_depth)
      fail_at(node->where, "expression nests deeper than ", limits_.max_expression_depth,
              " levels");
    return node;
  }

  std::unique_ptr<Expr> parse_tuple_or_expression() {
    auto first = parse_expression();
    if (!at_operator(",")) return first;
    auto tuple = make(Expr::Kind::List, first->where);
    tuple->tuple = true;
    tuple->children.push_back(std::move(first));
    while (at_operator(",")) {
      next();
      tuple->children.push_back(parse_expression());
    }
    return sealed(std::move(tuple));
  }

  std::unique_ptr<Expr> parse_expression(bool allow_conditional = true) {
    const Nesting nesting(*this, peek().where);
    auto value = parse_or();
    if (!allow_conditional || !at_name("if")) return value;
    auto conditional = make(Expr::Kind::Conditional, peek().where);
    next();
    conditional->children.push_back(std::move(value));
    conditional->children.push_back(parse_or());
    if (at_name("else")) {
      next();
      conditional->children.push_back(parse_expression());
    } else {
      conditional->children.push_back(nullptr);
    }
    return sealed(std::move(conditional));
  }

  std::unique_ptr<Expr> binary(Expr::Kind kind, std::unique_ptr<Expr> left,
                               std::unique_ptr<Expr> right, std::string op, Location where) {
    auto node = make(kind, where);
    node->name = std::move(op);
    node->children.push_back(std::move(left));
    node->children.push_back(std::move(right));
    return sealed(std::move(node));
  }

  std::unique_ptr<Expr> parse_or() {
    auto left = parse_and();
    while (at_name("or")) {
      const Location where = next().where;
      left = binary(Expr::Kind::Or, std::move(left), parse_and(), "or", where);
    }
    return left;
  }

  std::unique_ptr<Expr> parse_and() {
    auto left = parse_not();
    while (at_name("and")) {
      const Location where = next().where;
      left = binary(Expr::Kind::And, std::move(left), parse_not(), "and", where);
    }
    return left;
  }

  std::unique_ptr<Expr> parse_not() {
    if (at_name("not")) {
      const Location where = next().where;
      const Nesting nesting(*this, where);
      auto node = make(Expr::Kind::Not, where);
      node->children.push_back(parse_not());
      return sealed(std::move(node));
    }
    return parse_compare();
  }

  std::unique_ptr<Expr> parse_compare() {
    auto first = parse_math1();
    std::unique_ptr<Expr> compare;
    for (;;) {
      std::string op;
      if (peek().kind == TokenKind::Operator &&
          (peek().text == "==" || peek().text == "!=" || peek().text == "<" || peek().text == ">" ||
           peek().text == "<=" || peek().text == ">=")) {
        op = peek().text;
        next();
      } else if (at_name("in")) {
        op = "in";
        next();
      } else if (at_name("not") && at_name("in", 1)) {
        op = "not in";
        next();
        next();
      } else {
        break;
      }
      if (!compare) {
        compare = make(Expr::Kind::Compare, first->where);
        compare->children.push_back(std::move(first));
      }
      compare->ops.push_back(op);
      compare->children.push_back(parse_math1());
    }
    return compare ? sealed(std::move(compare)) : std::move(first);
  }

  std::unique_ptr<Expr> parse_math1() {
    auto left = parse_concat();
    while (at_operator("+") || at_operator("-")) {
      const Token& op = next();
      left = binary(Expr::Kind::Binary, std::move(left), parse_concat(), op.text, op.where);
    }
    return left;
  }

  std::unique_ptr<Expr> parse_concat() {
    auto left = parse_math2();
    while (at_operator("~")) {
      const Token& op = next();
      left = binary(Expr::Kind::Binary, std::move(left), parse_math2(), op.text, op.where);
    }
    return left;
  }

  std::unique_ptr<Expr> parse_math2() {
    auto left = parse_pow();
    while (at_operator("*") || at_operator("/") || at_operator("//") || at_operator("%")) {
      const Token& op = next();
      left = binary(Expr::Kind::Binary, std::move(left), parse_pow(), op.text, op.where);
    }
    return left;
  }

  std::unique_ptr<Expr> parse_pow() {
    auto left = parse_unary(true);
    while (at_operator("**")) {
      const Token& op = next();
      left = binary(Expr::Kind::Binary, std::move(left), parse_unary(true), op.text, op.where);
    }
    return left;
  }

  std::unique_ptr<Expr> parse_unary(bool with_filters) {
    const Nesting nesting(*this, peek().where);
    std::unique_ptr<Expr> node;
    if (at_operator("-")) {
      node = make(Expr::Kind::Negate, next().where);
      node->children.push_back(parse_unary(false));
      node = sealed(std::move(node));
    } else if (at_operator("+")) {
      next();
      node = parse_unary(false);
    } else {
      node = parse_postfix(parse_primary());
    }
    return with_filters ? parse_filters_and_tests(std::move(node)) : std::move(node);
  }

  std::unique_ptr<Expr> parse_primary() {
    const Token& token = peek();
    switch (token.kind) {
      case TokenKind::Name: {
        next();
        auto node = make(Expr::Kind::Literal, token.where);
        if (token.text == "true" || token.text == "True") {
          node->literal = Value(true);
        } else if (token.text == "false" || token.text == "False") {
          node->literal = Value(false);
        } else if (token.text == "none" || token.text == "None") {
          node->literal = Value::none();
        } else {
          node->kind = Expr::Kind::Name;
          node->name = token.text;
        }
        return node;
      }
      case TokenKind::String: {
        auto node = make(Expr::Kind::Literal, token.where);
        std::string text;
        while (peek().kind == TokenKind::String)
          text += next().text;
        node->literal = Value(std::move(text));
        return node;
      }
      case TokenKind::Integer: {
        auto node = make(Expr::Kind::Literal, token.where);
        node->literal = Value(next().integer);
        return node;
      }
      case TokenKind::Float: {
        auto node = make(Expr::Kind::Literal, token.where);
        node->literal = Value(next().number);
        return node;
      }
      case TokenKind::Operator:
        if (token.text == "(") return parse_parenthesized();
        if (token.text == "[") return parse_list();
        if (token.text == "{") return parse_dict();
        break;
      default:
        break;
    }
    fail_at(token.where, "expected an expression, found ", describe(token));
  }

  std::unique_ptr<Expr> parse_parenthesized() {
    const Location where = next().where;
    if (at_operator(")")) {
      next();
      auto empty = make(Expr::Kind::List, where);
      empty->tuple = true;
      return empty;
    }
    auto first = parse_expression();
    if (at_operator(")")) {
      next();
      return first;
    }
    auto tuple = make(Expr::Kind::List, where);
    tuple->tuple = true;
    tuple->children.push_back(std::move(first));
    while (at_operator(",")) {
      next();
      if (at_operator(")")) break;
      tuple->children.push_back(parse_expression());
    }
    expect_operator(")");
    return sealed(std::move(tuple));
  }

  std::unique_ptr<Expr> parse_list() {
    auto list = make(Expr::Kind::List, next().where);
    while (!at_operator("]")) {
      list->children.push_back(parse_expression());
      if (!at_operator("]")) expect_operator(",");
    }
    next();
    return sealed(std::move(list));
  }

  std::unique_ptr<Expr> parse_dict() {
    auto dict = make(Expr::Kind::Dict, next().where);
    while (!at_operator("}")) {
      dict->children.push_back(parse_expression());
      expect_operator(":");
      dict->children.push_back(parse_expression());
      if (!at_operator("}")) expect_operator(",");
    }
    next();
    return sealed(std::move(dict));
  }

  void parse_arguments(Expr& call) {
    expect_operator("(");
    while (!at_operator(")")) {
      if (peek().kind == TokenKind::Name && at_operator("=", 1)) {
        call.arg_names.push_back(next().text);
        next();
      } else {
        call.arg_names.emplace_back();
      }
      call.children.push_back(parse_expression());
      if (!at_operator(")")) expect_operator(",");
    }
    next();
  }

  std::unique_ptr<Expr> parse_postfix(std::unique_ptr<Expr> node) {
    for (;;) {
      if (at_operator(".")) {
        const Location where = next().where;
        auto attr = make(Expr::Kind::GetAttr, where);
        if (peek().kind == TokenKind::Integer) {
          attr->kind = Expr::Kind::GetItem;
          auto index = make(Expr::Kind::Literal, peek().where);
          index->literal = Value(next().integer);
          attr->children.push_back(std::move(node));
          attr->children.push_back(std::move(index));
        } else {
          attr->name = expect_name();
          attr->children.push_back(std::move(node));
        }
        node = sealed(std::move(attr));
      } else if (at_operator("[")) {
        node = sealed(parse_subscript(std::move(node)));
      } else if (at_operator("(")) {
        auto call = make(Expr::Kind::Call, peek().where);
        call->children.push_back(std::move(node));
        parse_arguments(*call);
        node = sealed(std::move(call));
      } else {
        return node;
      }
    }
  }

  std::unique_ptr<Expr> parse_subscript(std::unique_ptr<Expr> object) {
    const Location where = next().where;
    std::unique_ptr<Expr> parts[3];
    int part = 0;
    bool is_slice = false;
    for (;;) {
      if (at_operator("]")) break;
      if (at_operator(":")) {
        next();
        is_slice = true;
        if (++part > 2) fail_at(peek().where, "a slice has at most three parts");
        continue;
      }
      if (parts[part]) fail_at(peek().where, "expected ':' or ']' in a subscript");
      parts[part] = parse_expression();
    }
    next();
    auto node = make(is_slice ? Expr::Kind::Slice : Expr::Kind::GetItem, where);
    node->children.push_back(std::move(object));
    if (!is_slice) {
      if (!parts[0]) fail_at(where, "empty subscript");
      node->children.push_back(std::move(parts[0]));
    } else {
      for (auto& p : parts)
        node->children.push_back(std::move(p));
    }
    return node;
  }

  bool at_test_argument() const {
    const Token& token = peek();
    if (token.kind == TokenKind::String || token.kind == TokenKind::Integer ||
        token.kind == TokenKind::Float)
      return true;
    if (token.kind == TokenKind::Operator) return token.text == "[" || token.text == "{";
    if (token.kind != TokenKind::Name) return false;
    static const std::set<std::string, std::less<>> keywords{"and", "or", "not", "in",
                                                             "is",  "if", "else"};
    return !keywords.contains(token.text);
  }

  std::unique_ptr<Expr> parse_filters_and_tests(std::unique_ptr<Expr> node) {
    for (;;) {
      if (at_operator("|")) {
        next();
        const Token& name = peek();
        auto filter = make(Expr::Kind::Filter, name.where);
        filter->name = expect_name();
        if (!known_filters().contains(filter->name))
          fail_at(name.where, "unknown filter '", filter->name, "'");
        filter->children.push_back(std::move(node));
        if (at_operator("(")) parse_arguments(*filter);
        node = sealed(std::move(filter));
      } else if (at_name("is")) {
        const Location where = next().where;
        auto test = make(Expr::Kind::Test, where);
        if (at_name("not")) {
          next();
          test->negated = true;
        }
        const Token& name = peek();
        if (name.kind == TokenKind::Operator && name.text == "==") {
          next();
          test->name = "==";
        } else {
          test->name = expect_name();
        }
        if (!known_tests().contains(test->name))
          fail_at(name.where, "unknown test '", test->name, "'");
        test->children.push_back(std::move(node));
        if (at_operator("(")) {
          parse_arguments(*test);
        } else if (at_test_argument()) {
          test->arg_names.emplace_back();
          test->children.push_back(parse_postfix(parse_primary()));
        }
        node = sealed(std::move(test));
      } else {
        return node;
      }
    }
  }

  std::vector<Token> tokens_;
  ParserLimits limits_;
  size_t position_ = 0;
  int nesting_ = 0;
  int loop_depth_ = 0;
  std::string last_end_tag_;
};

}  // namespace floatllm::jinja
