// libFuzzer target: warm.filter (warm_filter_file.h), adopted by
// WarmFilterArray. The input is the file's first bytes; the rest of a file
// of 0..2 chunks (byte 0 chooses) is zeros. Flag byte bit 0 repairs the
// header's checksum and bit 1 every chunk's, so the fuzzer reaches past
// them. The store id and token expected are the ones the header holds, so a
// header that passes its checks is adopted. Adopting, preparing, reading
// every slot, setting one and writing the file again must never crash, leak
// or trip a sanitizer; an entry known after Prepare is either the file's,
// checked by its chunk's checksum, or the fallback's.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

#include "../core/crc32c.h"
#include "../core/file_util.h"
#include "../core/warm_filter_array.h"
#include "../core/warm_filter_file.h"

using namespace tierstore;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  const uint32_t chunks = data[1] % 3;
  data += 2;
  size -= 2;
  std::string bytes(kWarmFilterHeaderBytes + chunks * kWarmFilterChunkBytes, '\0');
  // A short input may also cut the file short.
  if (flags & 4) bytes.resize(std::min(bytes.size(), size));
  std::memcpy(bytes.data(), data, std::min(bytes.size(), size));
  auto* p = reinterpret_cast<uint8_t*>(bytes.data());
  if ((flags & 1) && bytes.size() >= kWarmFilterHeaderBytes) {
    const uint32_t crc = Crc32c(p, 40);
    std::memcpy(p + 40, &crc, 4);
  }
  if (flags & 2) {
    for (uint32_t c = 0; c < chunks && bytes.size() >= kWarmFilterHeaderBytes + (c + 1) * kWarmFilterChunkBytes; ++c) {
      uint8_t* q = p + kWarmFilterHeaderBytes + c * kWarmFilterChunkBytes;
      const uint32_t crc = Crc32c(q, sizeof(WarmFilterArray::Chunk));
      std::memcpy(q + sizeof(WarmFilterArray::Chunk), &crc, 4);
    }
  }
  uint64_t store_id = 0, token = 0;
  if (bytes.size() >= 40) {
    std::memcpy(&store_id, p + 24, 8);
    std::memcpy(&token, p + 32, 8);
  }
  char tmpl[] = "/tmp/tierstore-warm-filter-fuzz-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) abort();
  const std::string dir = tmpl;
  if (!AtomicWriteFile(JoinPath(dir, kWarmFilterFileName), bytes, false).ok()) abort();
  {
    WarmFilterArray a;
    const bool adopted = a.Adopt(dir, store_id, token).ok();
    const uint32_t limit = chunks * WarmFilterArray::kSlotsPerChunk + 10;
    a.Set(5, FilterEntry());
    a.Prepare(limit, [](uint32_t slot, FilterEntry* e) {
      e->created_at = slot;
      return slot % 3 == 0;
    });
    WarmFilterArray::View v = a.Snapshot();
    if (v.empty() && limit > 0 && adopted) {
      // Prepared: every adopted chunk checked, so the view is never empty.
      if (chunks > 0) abort();
    }
    double sink = 0;
    for (uint32_t slot = 0; slot < limit; ++slot) {
      if (const FilterEntry* e = v.Find(slot)) sink += e->created_at;
    }
    (void)sink;
    (void)a.WriteFile(dir, store_id, token + 1, false);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
