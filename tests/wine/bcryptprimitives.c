/* Test scaffolding only, never shipped: Wine 8 has no bcryptprimitives.dll, whose ProcessPrng
 * Rust's standard library imports on Windows. This stand-in fills the buffer from
 * RtlGenRandom (advapi32's SystemFunction036), which Wine has. Built by .ci/before.d/10-windows.sh
 * with mingw-w64 and placed beside scc-ports.exe for the Wine tests only. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
