// SPDX-License-Identifier: Apache-2.0
#include "ringbuf.h"

#include <cerrno>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "libbpf_log.h"
#include "map.h"

namespace tenet {

Napi::Function RingBuffer::Define(Napi::Env env)
{
	return DefineClass(env, "RingBuffer",
			   {
				   InstanceMethod<&RingBuffer::Consume>("consume"),
				   InstanceMethod<&RingBuffer::Close>("close"),
				   InstanceMethod<&RingBuffer::Ref>("ref"),
				   InstanceMethod<&RingBuffer::Unref>("unref"),
				   InstanceAccessor<&RingBuffer::GetClosed>("closed"),
			   });
}

RingBuffer::RingBuffer(const Napi::CallbackInfo &info)
	: Napi::ObjectWrap<RingBuffer>(info), Handle(info.Env()), env_(info.Env())
{
	Napi::Env env = info.Env();
	BpfMap *map = BpfMap::FromValue(env, info[0], "RingBuffer: map");
	if (!info[1].IsFunction())
		ThrowTypeError(env, "RingBuffer: onRecord must be a function");
	// A private fd: the ring buffer keeps working if the caller closes its map handle.
	UniqueFd fd = DupFd(map->FdOrThrow(env, "RingBuffer"));
	if (!fd.valid())
		ThrowBpfError(env, "fcntl(F_DUPFD_CLOEXEC)", errno);

	LibbpfCapture capture;
	rb_ = ring_buffer__new(fd.get(), &RingBuffer::OnSample, this, nullptr);
	if (!rb_) {
		int err = errno;
		ErrorDetails d;
		d.detail = capture.Summary();
		ThrowBpfError(env, "ring_buffer__new", err, d);
	}
	mapFd_ = std::move(fd);

	uv_loop_t *loop = nullptr;
	if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
		Release(true);
		ThrowBpfError(env, "napi_get_uv_event_loop", EINVAL);
	}
	auto *state = new PollState();
	int rc = uv_poll_init(loop, &state->poll, ring_buffer__epoll_fd(rb_));
	if (rc != 0) {
		// Never handed to libuv: plain delete.
		delete state;
		Release(true);
		ThrowBpfError(env, "uv_poll_init", -rc);
	}
	state->poll.data = state;
	state->owner = this;
	poll_ = state;
	if (napi_add_async_cleanup_hook(env, &RingBuffer::OnAsyncCleanup, state, &state->hook) !=
	    napi_ok) {
		state->hook = nullptr;
		Release(true);
		ThrowBpfError(env, "napi_add_async_cleanup_hook", EINVAL);
	}
	rc = uv_poll_start(&state->poll, UV_READABLE, &RingBuffer::OnReadable);
	if (rc != 0) {
		Release(true);
		ThrowBpfError(env, "uv_poll_start", -rc);
	}

	callback_ = Napi::Persistent(info[1].As<Napi::Function>());
	asyncContext_ = std::make_unique<Napi::AsyncContext>(env, "tenet:RingBuffer");
	// While polling, the JS object must not be collected: records would have nowhere to go.
	// The reference is dropped by close().
	Napi::ObjectWrap<RingBuffer>::Ref();
	selfRef_ = true;
}

RingBuffer::~RingBuffer() { Release(true); }

void RingBuffer::Release(bool teardown) noexcept
{
	if (consuming_) {
		closeRequested_ = true;
		return;
	}
	if (poll_) {
		poll_->owner = nullptr;
		ClosePoll(poll_);
		poll_ = nullptr;
	}
	if (rb_) {
		ring_buffer__free(rb_);
		rb_ = nullptr;
	}
	mapFd_.reset();
	if (!teardown) {
		callback_.Reset();
		asyncContext_.reset();
		pendingError_.Reset();
		if (selfRef_) {
			selfRef_ = false;
			Napi::ObjectWrap<RingBuffer>::Unref();
		}
	}
	Unregister();
}

int RingBuffer::OnSample(void *ctx, void *data, size_t size)
{
	auto *self = static_cast<RingBuffer *>(ctx);
	if (self->closeRequested_ || !self->pendingError_.IsEmpty())
		return -ECANCELED; // stop this drain
	Napi::Env env = self->env_;
	Napi::HandleScope scope(env);
	// The record memory is only valid during this call: hand JS a copy.
	Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::Copy(env, static_cast<uint8_t *>(data), size);
	try {
		self->callback_.Call(self->Value(), {buf});
	} catch (const Napi::Error &e) {
		self->pendingError_ = Napi::Persistent(e.Value());
		return -ECANCELED;
	}
	return 0;
}

int RingBuffer::Drain(bool fromEventLoop)
{
	consuming_ = true;
	int n;
	{
		// From the event loop we are outside any JS frame: open a callback scope so that
		// async hooks see the records as one async activity and microtasks queued by the
		// callback run once the drain is over.
		std::unique_ptr<Napi::CallbackScope> cbScope;
		if (fromEventLoop)
			cbScope = std::make_unique<Napi::CallbackScope>(env_, *asyncContext_);
		n = ring_buffer__consume(rb_);
	}
	consuming_ = false;

	Napi::Object error;
	if (!pendingError_.IsEmpty()) {
		error = pendingError_.Value();
		pendingError_.Reset();
	}
	if (closeRequested_) {
		closeRequested_ = false;
		Release(false);
	}
	if (!error.IsEmpty())
		throw Napi::Error(env_, error);
	if (n < 0 && n != -ECANCELED)
		ThrowBpfError(env_, "ring_buffer__consume", -n);
	return n < 0 ? 0 : n;
}

void RingBuffer::ClosePoll(PollState *state)
{
	if (state->closing)
		return;
	state->closing = true;
	// uv_close also removes the fd from libuv's epoll set, before ring_buffer__free closes it.
	uv_poll_stop(&state->poll);
	uv_close(reinterpret_cast<uv_handle_t *>(&state->poll), &RingBuffer::OnPollClosed);
}

void RingBuffer::OnPollClosed(uv_handle_t *handle)
{
	auto *state = static_cast<PollState *>(handle->data);
	// Only now may the environment finish tearing down (and unload this code).
	if (state->hook)
		napi_remove_async_cleanup_hook(state->hook);
	delete state;
}

void RingBuffer::OnAsyncCleanup(napi_async_cleanup_hook_handle hook, void *arg)
{
	auto *state = static_cast<PollState *>(arg);
	if (state->owner)
		// Releases the ring buffer too, and calls ClosePoll.
		state->owner->Release(true);
	else
		ClosePoll(state);
}

void RingBuffer::OnReadable(uv_poll_t *handle, int status, int events)
{
	auto *state = static_cast<PollState *>(handle->data);
	RingBuffer *self = state->owner;
	if (!self || !self->rb_)
		return;
	Napi::Env env = self->env_;
	Napi::HandleScope scope(env);
	try {
		self->Drain(true);
	} catch (const Napi::Error &e) {
		// Like an EventEmitter listener throwing: it is the process's uncaught exception.
		napi_fatal_exception(env, e.Value());
	}
}

Napi::Value RingBuffer::Consume(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (!rb_ || closeRequested_)
		ThrowClosed(env, "RingBuffer.consume");
	if (consuming_)
		ThrowBpfError(env, "RingBuffer.consume", EBUSY,
			      {"called from inside the record callback", {}, {}, {}});
	return Napi::Number::New(env, Drain(false));
}

Napi::Value RingBuffer::Close(const Napi::CallbackInfo &info)
{
	Release(false);
	return info.Env().Undefined();
}

Napi::Value RingBuffer::Ref(const Napi::CallbackInfo &info)
{
	if (poll_)
		uv_ref(reinterpret_cast<uv_handle_t *>(&poll_->poll));
	return info.This();
}

Napi::Value RingBuffer::Unref(const Napi::CallbackInfo &info)
{
	if (poll_)
		uv_unref(reinterpret_cast<uv_handle_t *>(&poll_->poll));
	return info.This();
}

Napi::Value RingBuffer::GetClosed(const Napi::CallbackInfo &info)
{
	return Napi::Boolean::New(info.Env(), rb_ == nullptr || closeRequested_);
}

} // namespace tenet
