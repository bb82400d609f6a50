// A program of a floatllm user: include the umbrella header, open a GGUF, print a fact of it.
#include <floatllm/floatllm.hpp>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer MODEL.gguf\n";
    return 2;
  }
  try {
    const floatllm::GgufFile gguf(argv[1]);
    std::cout << gguf.get<std::string_view>("general.architecture") << ": " << gguf.tensors().size()
              << " tensors\n";
    return gguf.tensors().empty() ? 1 : 0;
  } catch (const floatllm::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
