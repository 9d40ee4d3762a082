// SPDX-License-Identifier: Apache-2.0
// RingBuffer: delivers BPF ring buffer records to a JS callback through the Node event loop.
// libbpf's ring_buffer exposes an epoll fd that becomes readable when records arrive; a libuv poll
// handle watches it, so records are consumed on the JS thread with no extra thread and no
// busy polling.
#pragma once

#include <bpf/libbpf.h>
#include <napi.h>
#include <uv.h>

#include <memory>

#include "registry.h"
#include "unique_fd.h"

namespace tenet {

// The libuv poll handle and what closing it needs. Heap-allocated apart from the RingBuffer: libuv
// owns it until the close callback runs, which can be after the RingBuffer is gone. An async
// cleanup hook keeps the environment (and this addon's code, which a worker's teardown unloads)
// alive until that callback has run.
struct PollState {
	uv_poll_t poll;
	napi_async_cleanup_hook_handle hook = nullptr;
	bool closing = false;
	// Back-pointer for the readable callback; cleared when the RingBuffer lets go.
	class RingBuffer *owner = nullptr;
};

class RingBuffer : public Napi::ObjectWrap<RingBuffer>, public Handle {
public:
	static Napi::Function Define(Napi::Env env);
	explicit RingBuffer(const Napi::CallbackInfo &info);
	~RingBuffer() override;

	void Release(bool teardown) noexcept override;

private:
	static int OnSample(void *ctx, void *data, size_t size);
	static void OnReadable(uv_poll_t *handle, int status, int events);
	// Stops and closes the poll handle (idempotent); the state frees itself once closed.
	static void ClosePoll(PollState *state);
	static void OnPollClosed(uv_handle_t *handle);
	static void OnAsyncCleanup(napi_async_cleanup_hook_handle hook, void *arg);

	// Drains available records into the callback; returns the count, or throws the callback's
	// exception after stopping.
	int Drain(bool fromEventLoop);

	Napi::Value Consume(const Napi::CallbackInfo &info);
	Napi::Value Close(const Napi::CallbackInfo &info);
	Napi::Value Ref(const Napi::CallbackInfo &info);
	Napi::Value Unref(const Napi::CallbackInfo &info);
	Napi::Value GetClosed(const Napi::CallbackInfo &info);

	Napi::Env env_;
	UniqueFd mapFd_;
	ring_buffer *rb_ = nullptr;
	PollState *poll_ = nullptr;
	Napi::FunctionReference callback_;
	std::unique_ptr<Napi::AsyncContext> asyncContext_;
	// Set while ring_buffer__consume runs: close() from inside the callback must not free
	// the ring buffer under libbpf's feet; it is finished when consume returns.
	bool consuming_ = false;
	bool closeRequested_ = false;
	// The exception a callback threw during the current drain, rethrown or reported after.
	Napi::ObjectReference pendingError_;
	bool selfRef_ = false;
};

} // namespace tenet
