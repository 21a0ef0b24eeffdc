// safetensors files (Hugging Face's format): 8-byte little-endian header size N, N bytes of
// JSON header {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the raw little-endian data. Torch-free: the parser is fuzzed on its own.
// Every check names the file and the tensor: sizes, offsets in range and matching
// shape × dtype, no overlaps and no holes, supported dtypes (F32, F16, BF16, F8_E4M3).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace cdmoe::model {

enum class DType { kF32, kF16, kBF16, kF8E4M3 };  // F8_E4M3: codes of model/fp8.h, block-scaled

const char* dtype_name(DType dtype);  // "F32", "F16", "BF16", "F8_E4M3"
size_t dtype_size(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets within the data section
  uint64_t end = 0;

  int64_t elements() const;
};

struct SafetensorsHeader {
  std::map<std::string, TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // where the data section starts in the file
};

// Parses and checks the header of a whole file image (`file_size` bytes at `bytes`); errors
// are bad input naming `where`.
SafetensorsHeader parse_safetensors(const uint8_t* bytes, size_t file_size, const std::string& where);

// A memory-mapped, read-only safetensors file. Not copyable; tensor_data() pointers live as
// long as the object.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  const uint8_t* tensor_data(const TensorInfo& info) const { return base_ + header_.data_offset + info.begin; }
  // Tells the kernel the tensor's pages are no longer needed (they leave RSS; the file stays).
  void release(const TensorInfo& info) const;

 private:
  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  SafetensorsHeader header_;
};

struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // elements × dtype_size bytes, little-endian
};

// Writes a safetensors file atomically (a temporary beside it, then rename): a reader never
// sees a truncated file. Tensors are laid out in name order.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// The same, laid out in `tensors`' order, each tensor's bytes asked for when the file reaches it
// (TensorToWrite::data is ignored): `data_of(i)` returns tensor i's bytes, valid until the next
// call, so a writer holds one tensor at a time. An exception from data_of leaves no file.
void write_safetensors_streamed(const std::string& path, const std::vector<TensorToWrite>& tensors,
                                const std::function<const void*(size_t)>& data_of,
                                const std::map<std::string, std::string>& metadata = {});

}  // namespace cdmoe::model
