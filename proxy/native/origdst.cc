// SO_ORIGINAL_DST lookup for connections redirected by iptables REDIRECT/DNAT (DESIGN §2).
// One synchronous getsockopt per accepted connection: cheaper than any async round trip.
#include <napi.h>
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

// Returns {address, port, family} or null when the socket carries no original destination
// (not redirected: ENOENT; not an IPv4/IPv6 TCP socket: ENOPROTOOPT). Other errors throw,
// because they mean the caller passed something that is not a socket.
static Napi::Value OriginalDst(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "originalDst(fd): fd must be a number").ThrowAsJavaScriptException();
    return env.Null();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();

  struct sockaddr_storage local;
  socklen_t local_len = sizeof(local);
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&local), &local_len) != 0) {
    Napi::Error::New(env, std::string("getsockname: ") + strerror(errno)).ThrowAsJavaScriptException();
    return env.Null();
  }

  struct sockaddr_storage orig;
  socklen_t orig_len = sizeof(orig);
  memset(&orig, 0, sizeof(orig));
  int rc;
  if (local.ss_family == AF_INET6) {
    rc = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &orig, &orig_len);
    // An IPv4 connection accepted on a dual-stack socket answers at the IPv4 level.
    if (rc != 0) {
      orig_len = sizeof(orig);
      rc = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &orig, &orig_len);
    }
  } else if (local.ss_family == AF_INET) {
    rc = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &orig, &orig_len);
  } else {
    return env.Null();
  }
  if (rc != 0) {
    if (errno == ENOENT || errno == ENOPROTOOPT || errno == EOPNOTSUPP) return env.Null();
    Napi::Error::New(env, std::string("getsockopt(SO_ORIGINAL_DST): ") + strerror(errno))
        .ThrowAsJavaScriptException();
    return env.Null();
  }

  char buf[INET6_ADDRSTRLEN];
  Napi::Object out = Napi::Object::New(env);
  if (orig.ss_family == AF_INET) {
    auto* sin = reinterpret_cast<struct sockaddr_in*>(&orig);
    inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
    out.Set("address", buf);
    out.Set("port", ntohs(sin->sin_port));
    out.Set("family", "IPv4");
  } else if (orig.ss_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<struct sockaddr_in6*>(&orig);
    inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
    out.Set("address", buf);
    out.Set("port", ntohs(sin6->sin6_port));
    out.Set("family", "IPv6");
  } else {
    return env.Null();
  }
  return out;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("originalDst", Napi::Function::New(env, OriginalDst, "originalDst"));
  return exports;
}

NODE_API_MODULE(origdst, Init)
