#include "compute.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <span>

#include "floatllm/core/error.hpp"

namespace floatllm::vulkan {

namespace {

// SPIR-V words compiled from shaders/*.comp by glslc at build time.
constexpr uint32_t kMatmul[] = {
#include "shaders/matmul.spv.inc"
};
constexpr uint32_t kRmsNorm[] = {
#include "shaders/rms_norm.spv.inc"
};
constexpr uint32_t kRope[] = {
#include "shaders/rope.spv.inc"
};
constexpr uint32_t kAttention[] = {
#include "shaders/attention.spv.inc"
};
constexpr uint32_t kStoreKv[] = {
#include "shaders/store_kv.spv.inc"
};
constexpr uint32_t kGlu[] = {
#include "shaders/glu.spv.inc"
};
constexpr uint32_t kAdd[] = {
#include "shaders/add.spv.inc"
};
constexpr uint32_t kSoftmax[] = {
#include "shaders/softmax.spv.inc"
};
constexpr uint32_t kGatherRows[] = {
#include "shaders/gather_rows.spv.inc"
};
constexpr uint32_t kScaleAddRows[] = {
#include "shaders/scale_add_rows.spv.inc"
};
constexpr uint32_t kQuantizeActivations[] = {
#include "shaders/quantize_activations.spv.inc"
};

// In the order of the Shader enum.
constexpr std::span<const uint32_t> kSpirv[] = {
    kMatmul,  kRmsNorm,    kRope,         kAttention,          kStoreKv, kGlu, kAdd,
    kSoftmax, kGatherRows, kScaleAddRows, kQuantizeActivations};
static_assert(std::size(kSpirv) == static_cast<std::size_t>(Shader::kCount));

constexpr uint32_t kMaxGroups = 65535;  // the smallest maxComputeWorkGroupCount Vulkan allows

}  // namespace

Pipelines::Pipelines(Device& device) : device_(device) {
  std::array<VkDescriptorSetLayoutBinding, kBindings> bindings{};
  for (uint32_t b = 0; b < kBindings; ++b) {
    bindings[b].binding = b;
    bindings[b].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    bindings[b].descriptorCount = 1;
    bindings[b].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
  }
  VkDescriptorSetLayoutCreateInfo set_info{};
  set_info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
  set_info.bindingCount = kBindings;
  set_info.pBindings = bindings.data();
  check(vkCreateDescriptorSetLayout(device.handle(), &set_info, nullptr, &set_layout_),
        "vkCreateDescriptorSetLayout");

  VkPushConstantRange push{VK_SHADER_STAGE_COMPUTE_BIT, 0, kPushBytes};
  VkPipelineLayoutCreateInfo layout_info{};
  layout_info.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO;
  layout_info.setLayoutCount = 1;
  layout_info.pSetLayouts = &set_layout_;
  layout_info.pushConstantRangeCount = 1;
  layout_info.pPushConstantRanges = &push;
  check(vkCreatePipelineLayout(device.handle(), &layout_info, nullptr, &layout_),
        "vkCreatePipelineLayout");

  for (std::size_t s = 0; s < std::size(kSpirv); ++s) {
    VkShaderModuleCreateInfo info{};
    info.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO;
    info.codeSize = kSpirv[s].size_bytes();
    info.pCode = kSpirv[s].data();
    check(vkCreateShaderModule(device.handle(), &info, nullptr, &modules_[s]),
          "vkCreateShaderModule");
  }
}

Pipelines::~Pipelines() {
  VkDevice device = device_.handle();
  for (auto& [key, pipeline] : pipelines_)
    vkDestroyPipeline(device, pipeline, nullptr);
  for (VkShaderModule module : modules_)
    vkDestroyShaderModule(device, module, nullptr);
  vkDestroyPipelineLayout(device, layout_, nullptr);
  vkDestroyDescriptorSetLayout(device, set_layout_, nullptr);
}

VkPipeline Pipelines::get(Shader shader, uint32_t constant0, uint32_t constant1) {
  const std::lock_guard guard(mutex_);
  const auto key = std::make_tuple(shader, constant0, constant1);
  if (const auto found = pipelines_.find(key); found != pipelines_.end()) return found->second;

  const std::array<uint32_t, 2> values{constant0, constant1};
  const std::array<VkSpecializationMapEntry, 2> entries{{{0, 0, 4}, {1, 4, 4}}};
  VkSpecializationInfo specialization{};
  specialization.mapEntryCount = static_cast<uint32_t>(entries.size());
  specialization.pMapEntries = entries.data();
  specialization.dataSize = sizeof(values);
  specialization.pData = values.data();

  VkComputePipelineCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
  info.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
  info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  info.stage.module = modules_[static_cast<int>(shader)];
  info.stage.pName = "main";
  info.stage.pSpecializationInfo = &specialization;
  info.layout = layout_;
  VkPipeline pipeline = VK_NULL_HANDLE;
  check(vkCreateComputePipelines(device_.handle(), VK_NULL_HANDLE, 1, &info, nullptr, &pipeline),
        "vkCreateComputePipelines");
  pipelines_.emplace(key, pipeline);
  return pipeline;
}

Context::Context(int device_index)
    : device(device_index),
      device_memory(device, MemoryKind::kDevice),
      host_memory(device, MemoryKind::kHost),
      pipelines(device),
      placeholder(device_memory.allocate(16, "a placeholder binding")) {}

std::shared_ptr<Context> shared_context(int index) {
  static std::mutex mutex;
  static std::map<int, std::weak_ptr<Context>> contexts;
  const std::lock_guard guard(mutex);
  std::weak_ptr<Context>& slot = contexts[index];
  std::shared_ptr<Context> context = slot.lock();
  if (!context) {
    context = std::make_shared<Context>(index);
    slot = context;
  }
  return context;
}

CommandStream::CommandStream(Context& context) : context_(context) {
  VkDevice device = context.device.handle();
  VkCommandPoolCreateInfo pool_info{};
  pool_info.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
  pool_info.queueFamilyIndex = context.device.compute_family();
  check(vkCreateCommandPool(device, &pool_info, nullptr, &command_pool_), "vkCreateCommandPool");

  VkCommandBufferAllocateInfo buffer_info{};
  buffer_info.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
  buffer_info.commandPool = command_pool_;
  buffer_info.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  buffer_info.commandBufferCount = 1;
  check(vkAllocateCommandBuffers(device, &buffer_info, &commands_), "vkAllocateCommandBuffers");

  VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kSetsPerPool * Pipelines::kBindings};
  VkDescriptorPoolCreateInfo descriptor_info{};
  descriptor_info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
  descriptor_info.maxSets = kSetsPerPool;
  descriptor_info.poolSizeCount = 1;
  descriptor_info.pPoolSizes = &size;
  check(vkCreateDescriptorPool(device, &descriptor_info, nullptr, &descriptor_pool_),
        "vkCreateDescriptorPool");

  VkFenceCreateInfo fence_info{};
  fence_info.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
  check(vkCreateFence(device, &fence_info, nullptr, &fence_), "vkCreateFence");
}

CommandStream::~CommandStream() {
  VkDevice device = context_.device.handle();
  if (recording_) vkEndCommandBuffer(commands_);
  vkDestroyFence(device, fence_, nullptr);
  vkDestroyDescriptorPool(device, descriptor_pool_, nullptr);
  vkDestroyCommandPool(device, command_pool_, nullptr);
}

VkCommandBuffer CommandStream::recording() {
  if (!recording_) {
    VkCommandBufferBeginInfo info{};
    info.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
    info.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    check(vkBeginCommandBuffer(commands_, &info), "vkBeginCommandBuffer");
    recording_ = true;
    empty_ = true;
  }
  return commands_;
}

void CommandStream::barrier() {
  if (empty_) {
    empty_ = false;
    return;
  }
  VkMemoryBarrier memory{};
  memory.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  memory.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  memory.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                         VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  const VkPipelineStageFlags stages =
      VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
  vkCmdPipelineBarrier(commands_, stages, stages, 0, 1, &memory, 0, nullptr, 0, nullptr);
}

void CommandStream::record_dispatch(Shape shape, std::initializer_list<const Buffer*> bindings,
                                    const void* push, uint32_t push_bytes, uint64_t groups,
                                    uint32_t second, bool grid) {
  if (bindings.size() > Pipelines::kBindings) fail("Vulkan: a dispatch binds too many buffers");
  if (sets_used_ == kSetsPerPool) finish();
  VkCommandBuffer commands = recording();
  barrier();

  VkDescriptorSetLayout set_layout = context_.pipelines.set_layout();
  VkDescriptorSetAllocateInfo allocate{};
  allocate.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO;
  allocate.descriptorPool = descriptor_pool_;
  allocate.descriptorSetCount = 1;
  allocate.pSetLayouts = &set_layout;
  VkDescriptorSet set = VK_NULL_HANDLE;
  check(vkAllocateDescriptorSets(context_.device.handle(), &allocate, &set),
        "vkAllocateDescriptorSets");
  ++sets_used_;

  std::array<VkDescriptorBufferInfo, Pipelines::kBindings> infos{};
  std::array<VkWriteDescriptorSet, Pipelines::kBindings> writes{};
  auto binding = bindings.begin();
  for (uint32_t b = 0; b < Pipelines::kBindings; ++b) {
    const Buffer* buffer =
        binding != bindings.end() && *binding != nullptr ? *binding : &context_.placeholder;
    if (binding != bindings.end()) ++binding;
    infos[b] = {buffer->handle(), 0, VK_WHOLE_SIZE};
    writes[b].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
    writes[b].dstSet = set;
    writes[b].dstBinding = b;
    writes[b].descriptorCount = 1;
    writes[b].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[b].pBufferInfo = &infos[b];
  }
  vkUpdateDescriptorSets(context_.device.handle(), Pipelines::kBindings, writes.data(), 0, nullptr);

  vkCmdBindPipeline(commands, VK_PIPELINE_BIND_POINT_COMPUTE,
                    context_.pipelines.get(shape.shader, shape.constant0, shape.constant1));
  vkCmdBindDescriptorSets(commands, VK_PIPELINE_BIND_POINT_COMPUTE, context_.pipelines.layout(), 0,
                          1, &set, 0, nullptr);
  std::array<std::byte, Pipelines::kPushBytes> constants{};
  std::memcpy(constants.data(), push, push_bytes);
  vkCmdPushConstants(commands, context_.pipelines.layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0,
                     Pipelines::kPushBytes, constants.data());
  if (grid) {
    if (groups > kMaxGroups || second > kMaxGroups) fail("Vulkan: dispatch grid too large");
    vkCmdDispatch(commands, static_cast<uint32_t>(groups), second, 1);
    return;
  }
  if (groups == 0 || second == 0) return;
  const auto x = static_cast<uint32_t>(std::min<uint64_t>(groups, kMaxGroups));
  const uint64_t y = (groups + x - 1) / x;
  if (y > kMaxGroups || second > kMaxGroups)
    fail("Vulkan: dispatch of ", groups, " groups too large");
  vkCmdDispatch(commands, x, static_cast<uint32_t>(y), second);
}

void CommandStream::copy(const Buffer& src, uint64_t src_offset, const Buffer& dst,
                         uint64_t dst_offset, uint64_t bytes) {
  VkCommandBuffer commands = recording();
  barrier();
  const VkBufferCopy region{src_offset, dst_offset, bytes};
  vkCmdCopyBuffer(commands, src.handle(), dst.handle(), 1, &region);
}

void CommandStream::fill_zero(const Buffer& buffer, uint64_t bytes) {
  VkCommandBuffer commands = recording();
  barrier();
  vkCmdFillBuffer(commands, buffer.handle(), 0, (bytes + 3) / 4 * 4, 0);
}

void CommandStream::finish() {
  if (!recording_) return;
  recording_ = false;
  // Results become visible to the host reads that follow the fence.
  VkMemoryBarrier to_host{};
  to_host.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  to_host.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  to_host.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
  vkCmdPipelineBarrier(commands_,
                       VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                       VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &to_host, 0, nullptr, 0, nullptr);
  check(vkEndCommandBuffer(commands_), "vkEndCommandBuffer");
  VkDevice device = context_.device.handle();
  context_.device.submit_compute(commands_, fence_);
  check(vkWaitForFences(device, 1, &fence_, VK_TRUE, UINT64_MAX), "vkWaitForFences");
  check(vkResetFences(device, 1, &fence_), "vkResetFences");
  check(vkResetCommandPool(device, command_pool_, 0), "vkResetCommandPool");
  check(vkResetDescriptorPool(device, descriptor_pool_, 0), "vkResetDescriptorPool");
  sets_used_ = 0;
}

}  // namespace floatllm::vulkan
