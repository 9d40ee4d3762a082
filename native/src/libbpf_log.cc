// SPDX-License-Identifier: Apache-2.0
#include "libbpf_log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

namespace tenet {

static thread_local LibbpfCapture *tl_capture = nullptr;
static bool g_debug = false;

// Appends to the active capture; never allocates unboundedly (libbpf can print whole verifier logs
// at debug level, which we do not capture).
static void Append(std::string &out, const char *fmt, va_list ap)
{
	va_list copy;
	va_copy(copy, ap);
	char small[512];
	int n = vsnprintf(small, sizeof(small), fmt, copy);
	va_end(copy);
	if (n < 0)
		return;
	if (static_cast<size_t>(n) < sizeof(small)) {
		out.append(small, n);
		return;
	}
	std::vector<char> big(static_cast<size_t>(n) + 1);
	vsnprintf(big.data(), big.size(), fmt, ap);
	out.append(big.data(), n);
}

static int Print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (g_debug) {
		va_list copy;
		va_copy(copy, ap);
		vfprintf(stderr, fmt, copy);
		va_end(copy);
	}
	// Debug output (every relocation, every probe) would drown the one line that matters.
	if (level == LIBBPF_DEBUG || tl_capture == nullptr)
		return 0;
	tl_capture->Write(fmt, ap);
	return 0;
}

void InstallLibbpfPrint()
{
	static std::once_flag once;
	std::call_once(once, [] {
		const char *env = getenv("TENET_LIBBPF_DEBUG");
		g_debug = env && *env && strcmp(env, "0") != 0;
		libbpf_set_print(Print);
	});
}

LibbpfCapture::LibbpfCapture() : prev_(tl_capture) { tl_capture = this; }

LibbpfCapture::~LibbpfCapture() { tl_capture = prev_; }

void LibbpfCapture::Write(const char *fmt, va_list ap) { Append(text_, fmt, ap); }

std::string LibbpfCapture::Summary() const
{
	std::string first_failure;
	std::string last;
	size_t pos = 0;
	while (pos < text_.size()) {
		size_t end = text_.find('\n', pos);
		if (end == std::string::npos)
			end = text_.size();
		std::string line = text_.substr(pos, end - pos);
		pos = end + 1;
		if (line.rfind("libbpf: ", 0) == 0)
			line.erase(0, 8);
		if (line.empty())
			continue;
		last = line;
		if (first_failure.empty() &&
		    (line.find("fail") != std::string::npos || line.find("error") != std::string::npos))
			first_failure = line;
	}
	return first_failure.empty() ? last : first_failure;
}

} // namespace tenet
