// SPDX-License-Identifier: Apache-2.0
// An owned file descriptor. Every fd the addon creates lives in one of these from the syscall that
// returned it until a handle adopts it, so an exception thrown in between cannot leak it.
#pragma once

#include <unistd.h>

namespace tenet {

class UniqueFd {
public:
	UniqueFd() = default;
	explicit UniqueFd(int fd) : fd_(fd) {}
	~UniqueFd() { reset(); }

	UniqueFd(const UniqueFd &) = delete;
	UniqueFd &operator=(const UniqueFd &) = delete;
	UniqueFd(UniqueFd &&other) noexcept : fd_(other.release()) {}
	UniqueFd &operator=(UniqueFd &&other) noexcept
	{
		if (this != &other)
			reset(other.release());
		return *this;
	}

	int get() const { return fd_; }
	bool valid() const { return fd_ >= 0; }

	int release()
	{
		int fd = fd_;
		fd_ = -1;
		return fd;
	}

	void reset(int fd = -1)
	{
		if (fd_ >= 0)
			::close(fd_);
		fd_ = fd;
	}

private:
	int fd_ = -1;
};

// fcntl(F_DUPFD_CLOEXEC): handles handed to JS own a private duplicate so that they outlive the
// libbpf object (or the caller's handle) they came from. Returns an invalid UniqueFd and leaves
// errno set on failure.
UniqueFd DupFd(int fd);

} // namespace tenet
