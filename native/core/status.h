// Status: the result of every fallible core operation (LevelDB style).
//
// Guarantees: a Status is a value type; ok() is true only for Status::OK().
// Every non-OK status carries one of the public error codes (StatusCode)
// and a message that says what was wrong (and, for corruption, names the file).
// Thread-safety: none needed (immutable value).
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace tierstore {

enum class StatusCode : unsigned char {
  kOk = 0,
  kInvalidArgument,
  kDimensionMismatch,
  kContentTooLarge,
  kStoreClosed,
  kStoreLocked,
  kReadOnly,
  kCorruption,
  kIoError,
};

// The public spelling of a code, e.g. "INVALID_ARGUMENT".
inline const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kDimensionMismatch: return "DIMENSION_MISMATCH";
    case StatusCode::kContentTooLarge: return "CONTENT_TOO_LARGE";
    case StatusCode::kStoreClosed: return "STORE_CLOSED";
    case StatusCode::kStoreLocked: return "STORE_LOCKED";
    case StatusCode::kReadOnly: return "READ_ONLY";
    case StatusCode::kCorruption: return "CORRUPTION";
    case StatusCode::kIoError: return "IO_ERROR";
  }
  return "UNKNOWN";
}

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string msg) { return Status(StatusCode::kInvalidArgument, std::move(msg)); }
  static Status DimensionMismatch(std::string msg) { return Status(StatusCode::kDimensionMismatch, std::move(msg)); }
  static Status ContentTooLarge(std::string msg) { return Status(StatusCode::kContentTooLarge, std::move(msg)); }
  static Status StoreClosed(std::string msg) { return Status(StatusCode::kStoreClosed, std::move(msg)); }
  static Status StoreLocked(std::string msg) { return Status(StatusCode::kStoreLocked, std::move(msg)); }
  static Status ReadOnly(std::string msg) { return Status(StatusCode::kReadOnly, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(StatusCode::kCorruption, std::move(msg)); }
  static Status IoError(std::string msg) { return Status(StatusCode::kIoError, std::move(msg)); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const {
    return ok() ? std::string("OK") : std::string(StatusCodeName(code_)) + ": " + message_;
  }

 private:
  Status(StatusCode code, std::string msg) : code_(code), message_(std::move(msg)) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

#define TS_RETURN_IF_ERROR(expr)          \
  do {                                    \
    ::tierstore::Status _st = (expr);     \
    if (!_st.ok()) return _st;            \
  } while (0)

}  // namespace tierstore
