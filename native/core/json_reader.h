// JsonReader: reads JSON text front to back, for the metadata conditions of
// a filter and the top-level (key, value) pairs of a record's metadata
// (record_filter.cc, metadata_signature.cc read the same text the same way,
// so a signature and an exact match agree on what a value is).
//
// Guarantees: every method returns false on text that is not JSON and then
// leaves the position unspecified; nothing is read outside [text.data(),
// text.data() + text.size()). Nested values are skipped without recursion.
// Synchronization: none; one reader per thread. The reader does not own the
// text, which must outlive it.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "record_filter.h"
#include "utf16.h"

namespace tierstore {

class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  void SkipSpace() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool AtEnd() const { return p_ == end_; }
  bool Consume(char c) {
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  char Peek() const { return p_ < end_ ? *p_ : '\0'; }
  const char* position() const { return p_; }

  // A string, decoded to UTF-8 into *out.
  bool String(std::string* out) {
    out->clear();
    if (!Consume('"')) return false;
    while (p_ < end_) {
      // A run of plain characters at once.
      const char* run = p_;
      while (p_ < end_ && *p_ != '"' && *p_ != '\\') ++p_;
      out->append(run, static_cast<size_t>(p_ - run));
      if (p_ == end_) return false;
      const char c = *p_++;
      if (c == '"') return true;
      if (p_ == end_) return false;
      const char e = *p_++;
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          // One unit, or a surrogate pair as two escapes; a lone surrogate
          // is not text (metadata never holds one).
          uint8_t units[4];
          uint32_t unit = 0;
          if (!Hex4(&unit)) return false;
          size_t n = 1;
          units[0] = static_cast<uint8_t>(unit);
          units[1] = static_cast<uint8_t>(unit >> 8);
          if (unit >= 0xD800 && unit < 0xDC00) {
            uint32_t low = 0;
            if (end_ - p_ < 6 || p_[0] != '\\' || p_[1] != 'u') return false;
            p_ += 2;
            if (!Hex4(&low)) return false;
            units[2] = static_cast<uint8_t>(low);
            units[3] = static_cast<uint8_t>(low >> 8);
            n = 2;
          }
          char utf8[MaxUtf8BytesOfUtf16(2)];
          const size_t len = Utf16LeToUtf8(units, n, utf8);
          if (len == kLoneSurrogate) return false;
          out->append(utf8, len);
          break;
        }
        default: return false;
      }
    }
    return false;
  }

  bool Number(double* out) {
    const char* start = p_;
    while (p_ < end_ && ((*p_ >= '0' && *p_ <= '9') || *p_ == '-' || *p_ == '+' || *p_ == '.' || *p_ == 'e' ||
                         *p_ == 'E')) {
      ++p_;
    }
    if (start == p_ || *start == '+') return false;
    const auto [ptr, ec] = std::from_chars(start, p_, *out, std::chars_format::general);
    return ec == std::errc() && ptr == p_ && std::isfinite(*out);
  }

  bool Literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

  // A scalar; false for anything else (an object or array included).
  bool Scalar(JsonScalar* out) {
    switch (Peek()) {
      case '"': out->kind = JsonScalar::Kind::kString; return String(&out->string);
      case 'n': out->kind = JsonScalar::Kind::kNull; return Literal("null");
      case 't': out->kind = JsonScalar::Kind::kTrue; return Literal("true");
      case 'f': out->kind = JsonScalar::Kind::kFalse; return Literal("false");
      default: out->kind = JsonScalar::Kind::kNumber; return Number(&out->number);
    }
  }

  // Skips one value of any kind, nested ones without recursion.
  bool SkipValue() {
    const char c = Peek();
    if (c == '"') {
      return SkipString();
    }
    if (c != '{' && c != '[') {
      JsonScalar ignored;
      return Scalar(&ignored);
    }
    size_t depth = 0;
    while (p_ < end_) {
      const char d = *p_;
      if (d == '"') {
        if (!SkipString()) return false;
        continue;
      }
      ++p_;
      if (d == '{' || d == '[') {
        ++depth;
      } else if (d == '}' || d == ']') {
        if (--depth == 0) return true;
      }
    }
    return false;
  }

 private:
  bool SkipString() {
    ++p_;  // the opening quote
    while (p_ < end_) {
      const char c = *p_++;
      if (c == '"') return true;
      if (c == '\\') {
        if (p_ == end_) return false;
        ++p_;
      }
    }
    return false;
  }

  bool Hex4(uint32_t* out) {
    if (end_ - p_ < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = *p_++;
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    *out = v;
    return true;
  }

  const char* p_;
  const char* end_;
};

}  // namespace tierstore
