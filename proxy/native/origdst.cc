// Placeholder replaced by the proxy engine work: SO_ORIGINAL_DST lookup.
#include <napi.h>
static Napi::Object Init(Napi::Env env, Napi::Object exports) { return exports; }
NODE_API_MODULE(origdst, Init)
