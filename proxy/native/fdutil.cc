// File-descriptor helpers for the supervisor (DESIGN §4): it keeps every data listening socket
// open but NOT accepting in its own event loop by holding a dup of the fd, so connections wait
// in the kernel backlog while no engine is up and the socket never closes across generations.
// Node has no dup(); libuv closes the fd it owns when a server closes.
#include <napi.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static int FdArg(const Napi::CallbackInfo& info, const char* fn) {
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(info.Env(), std::string(fn) + "(fd): fd must be a number")
        .ThrowAsJavaScriptException();
    return -1;
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd < 0) {
    Napi::RangeError::New(info.Env(), std::string(fn) + "(fd): fd must be >= 0")
        .ThrowAsJavaScriptException();
    return -1;
  }
  return fd;
}

// dup with close-on-exec: the copy must not leak into unrelated children; a child that should
// inherit it gets it through spawn's stdio, which dup2s it without the flag.
static Napi::Value DupCloexec(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, "dup");
  if (fd < 0) return info.Env().Null();
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) {
    Napi::Error::New(info.Env(), std::string("dup: ") + strerror(errno)).ThrowAsJavaScriptException();
    return info.Env().Null();
  }
  return Napi::Number::New(info.Env(), copy);
}

static Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, "close");
  if (fd < 0) return info.Env().Null();
  if (close(fd) != 0 && errno != EINTR) {
    Napi::Error::New(info.Env(), std::string("close: ") + strerror(errno)).ThrowAsJavaScriptException();
  }
  return info.Env().Undefined();
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("dup", Napi::Function::New(env, DupCloexec, "dup"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  return exports;
}

NODE_API_MODULE(fdutil, Init)
