#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"

namespace cdmoe::model {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // the format's own limit is 100 MB

bool parse_dtype(const std::string& name, DType& dtype) {
  if (name == "F32") dtype = DType::kF32;
  else if (name == "F16") dtype = DType::kF16;
  else if (name == "BF16") dtype = DType::kBF16;
  else if (name == "F8_E4M3") dtype = DType::kF8E4M3;
  else return false;
  return true;
}

uint64_t checked_offset(const nlohmann::json& value, const std::string& at) {
  if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<int64_t>() >= 0)) {
    throw_bad_input(at + ": data_offsets must be two non-negative integers");
  }
  return value.get<uint64_t>();
}

}  // namespace

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kF8E4M3: return "F8_E4M3";
  }
  return "?";
}

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kF16:
    case DType::kBF16: return 2;
    case DType::kF8E4M3: return 1;
  }
  throw_runtime("a safetensors dtype without a size");
}

namespace {

// Not core/tensor_table.h's shape_numel: this file builds alone into the fuzzer.
int64_t elements_of(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  return count;
}

}  // namespace

int64_t TensorInfo::elements() const { return elements_of(shape); }

SafetensorsHeader parse_safetensors(const uint8_t* bytes, size_t file_size, const std::string& where) {
  if (file_size < 8) throw_bad_input(where + ": truncated: " + std::to_string(file_size) + " bytes, no header size");
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = header_size << 8 | bytes[i];
  if (header_size > file_size - 8) {
    throw_bad_input(where + ": header size " + std::to_string(header_size) + " is larger than the file (" +
                    std::to_string(file_size) + " bytes)");
  }
  if (header_size > kMaxHeaderBytes) throw_bad_input(where + ": header size " + std::to_string(header_size) + " exceeds 100 MB");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_size);
  } catch (const nlohmann::json::exception& e) {
    throw_bad_input(where + ": header is not valid JSON (" + e.what() + ")");
  }
  if (!header.is_object()) throw_bad_input(where + ": header is not a JSON object");

  SafetensorsHeader result;
  result.data_offset = 8 + header_size;
  const uint64_t data_size = file_size - result.data_offset;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) throw_bad_input(where + ": __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) throw_bad_input(where + ": __metadata__ value of '" + m.key() + "' is not a string");
        result.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    std::string at = where + ": tensor '" + it.key() + "'";
    const nlohmann::json& entry = *it;
    if (!entry.is_object()) throw_bad_input(at + ": entry is not an object");
    TensorInfo info;
    info.name = it.key();
    auto dtype = entry.find("dtype");
    if (dtype == entry.end() || !dtype->is_string()) throw_bad_input(at + ": missing dtype");
    if (!parse_dtype(dtype->get<std::string>(), info.dtype)) {
      throw_bad_input(at + ": unsupported dtype " + dtype->get<std::string>() + " (supported: F32, F16, BF16, F8_E4M3)");
    }
    auto shape = entry.find("shape");
    if (shape == entry.end() || !shape->is_array()) throw_bad_input(at + ": missing shape");
    uint64_t elements = 1;
    for (const nlohmann::json& d : *shape) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) throw_bad_input(at + ": shape holds " + d.dump());
      uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && elements > std::numeric_limits<uint64_t>::max() / 8 / dim) throw_bad_input(at + ": shape too large");
      elements *= dim;
      info.shape.push_back(int64_t(dim));
    }
    auto offsets = entry.find("data_offsets");
    if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2) {
      throw_bad_input(at + ": data_offsets must be [begin, end]");
    }
    info.begin = checked_offset((*offsets)[0], at);
    info.end = checked_offset((*offsets)[1], at);
    if (info.begin > info.end || info.end > data_size) {
      throw_bad_input(at + ": data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
                      "] are out of range (data section is " + std::to_string(data_size) + " bytes)");
    }
    if (info.end - info.begin != elements * dtype_size(info.dtype)) {
      throw_bad_input(at + ": data_offsets span " + std::to_string(info.end - info.begin) + " bytes but shape x " +
                      dtype_name(info.dtype) + " needs " + std::to_string(elements * dtype_size(info.dtype)));
    }
    result.tensors.emplace(info.name, std::move(info));
  }
  // The format requires the data section to be tiled exactly: no overlap, no hole.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& [name, info] : result.tensors) by_offset.push_back(&info);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  for (const TensorInfo* info : by_offset) {
    if (info->begin < cursor) throw_bad_input(where + ": tensor '" + info->name + "' overlaps the tensor before it");
    if (info->begin > cursor) {
      throw_bad_input(where + ": bytes " + std::to_string(cursor) + ".." + std::to_string(info->begin) +
                      " of the data section belong to no tensor (before '" + info->name + "')");
    }
    cursor = info->end;
  }
  if (cursor != data_size) {
    throw_bad_input(where + ": the data section has " + std::to_string(data_size - cursor) + " bytes after the last tensor");
  }
  return result;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_bad_input(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat info {};
  if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    close(fd);
    throw_bad_input(path + ": not a regular file");
  }
  size_ = size_t(info.st_size);
  if (size_ > 0) {
    void* mapped = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapped == MAP_FAILED) {
      close(fd);
      throw_runtime(path + ": mmap failed (" + std::strerror(errno) + ")");
    }
    base_ = static_cast<const uint8_t*>(mapped);
  }
  close(fd);
  static const uint8_t kEmpty[1] = {0};
  try {
    header_ = parse_safetensors(base_ ? base_ : kEmpty, size_, path);
  } catch (...) {
    if (base_) munmap(const_cast<uint8_t*>(base_), size_);
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (base_) munmap(const_cast<uint8_t*>(base_), size_);
}

void SafetensorsFile::release(const TensorInfo& info) const {
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t first = reinterpret_cast<uintptr_t>(tensor_data(info));
  uintptr_t last = first + (info.end - info.begin);
  uintptr_t aligned = (first + uintptr_t(page) - 1) & ~uintptr_t(page - 1);
  if (last > aligned) madvise(reinterpret_cast<void*>(aligned), last - aligned, MADV_DONTNEED);
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorToWrite> ordered = tensors;
  std::sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  write_safetensors_streamed(path, ordered, [&](size_t i) { return ordered[i].data; }, metadata);
}

void write_safetensors_streamed(const std::string& path, const std::vector<TensorToWrite>& tensors,
                                const std::function<const void*(size_t)>& data_of,
                                const std::map<std::string, std::string>& metadata) {
  auto bytes_of = [](const TensorToWrite& t) { return dtype_size(t.dtype) * uint64_t(elements_of(t.shape)); };
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    if (header.contains(t.name)) throw_runtime(path + ": tensor '" + t.name + "' given twice");
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes_of(t)}}};
    offset += bytes_of(t);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned, as HF's writer does
  write_file_atomically(path, [&](std::FILE* out) {
    uint8_t size_bytes[8];
    for (int i = 0; i < 8; ++i) size_bytes[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
    bool ok = std::fwrite(size_bytes, 1, 8, out) == 8 && std::fwrite(text.data(), 1, text.size(), out) == text.size();
    for (size_t i = 0; ok && i < tensors.size(); ++i) {
      const uint64_t bytes = bytes_of(tensors[i]);
      const void* data = data_of(i);
      ok = bytes == 0 || std::fwrite(data, 1, bytes, out) == bytes;
    }
    return ok;
  });
}

}  // namespace cdmoe::model
