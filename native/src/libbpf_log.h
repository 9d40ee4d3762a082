// SPDX-License-Identifier: Apache-2.0
// libbpf's print callback, routed per thread. libbpf has one process-wide print hook; program
// loads run on libuv worker threads while map and attach calls run on the JS thread, so messages
// are collected into whatever LibbpfCapture is active on the calling thread and attached to the
// error of the call that produced them, instead of going to stderr where nobody correlates them.
#pragma once

#include <cstdarg>
#include <string>

namespace tenet {

// Installs the print callback once per process. Set TENET_LIBBPF_DEBUG=1 to also copy every
// message (debug level included) to stderr.
void InstallLibbpfPrint();

// While alive, libbpf messages printed on this thread are appended to text(). Nests: an inner
// capture hides messages from the outer one for its lifetime.
class LibbpfCapture {
public:
	LibbpfCapture();
	~LibbpfCapture();
	LibbpfCapture(const LibbpfCapture &) = delete;
	LibbpfCapture &operator=(const LibbpfCapture &) = delete;

	const std::string &text() const { return text_; }

	// The most telling line for an error message: the first line that says something failed,
	// else the last line; without the "libbpf: " prefix. Empty if nothing was printed.
	std::string Summary() const;

	// Called by the print callback only.
	void Write(const char *fmt, va_list ap);

private:
	std::string text_;
	LibbpfCapture *prev_;
};

} // namespace tenet
