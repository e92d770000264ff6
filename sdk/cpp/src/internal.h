// Helpers shared by the client and the writer: ids, clock, JSON text, names, sha256, errors.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "modelbox/modelbox.h"

namespace modelbox::internal {

constexpr size_t kMaxNameChars = 4096;
constexpr size_t kMaxTextChars = 16u << 20;
constexpr int kMaxMessageBytes = 256 << 20;

// 32 hex characters (128 random bits): run, event and batch ids, as in the Python SDK.
std::string NewId();

// Seconds since the Unix epoch, as the Python SDK stamps records.
inline double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// What the server accepts as a key, name or tag value: at most 4096 bytes of UTF-8 without NUL.
bool ValidName(std::string_view s, bool empty_ok);
// What the server accepts as an id: [A-Za-z0-9][A-Za-z0-9._:-]{0,127}.
bool ValidId(std::string_view s);

std::string JsonString(std::string_view s);
std::string JsonDouble(double v);  // NaN / Infinity written as Python's json module does
std::string AttrsJson(const Attributes& attrs);

// Streaming sha256 (OpenSSL).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t size);
  std::string HexDigest();

 private:
  void* ctx_;
};

// The library's exception for a failed call.
Error ToError(const grpc::Status& status, const std::string& target);
bool Retryable(grpc::StatusCode code);

}  // namespace modelbox::internal
