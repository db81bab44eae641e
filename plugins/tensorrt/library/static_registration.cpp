/*
 * libdlu_trt_plugins_static.so: for loaders that only dlopen a plugin library and expect it to
 * register its plugins while loading (trtexec --staticPlugins, Polygraphy --plugins, a plain
 * ctypes.CDLL). TensorRT's documented way for those is REGISTER_TENSORRT_PLUGIN: a static
 * initialiser in a library linked against libnvinfer. This library is exactly that: it links
 * libnvinfer.so.<major> and libdlu_trt_plugins.so, so the dynamic loader initialises both before
 * running the initialiser below, whoever loads it and in whatever order, and the initialiser
 * registers the creators of libdlu_trt_plugins.so with getPluginRegistry(). Never give this
 * library to IPluginRegistry::loadLibrary / --dynamicPlugins (it exports no getCreators).
 */
#include "dlu_trt_plugins.h"

#include "NvInferRuntime.h"

namespace
{

struct Registration
{
    Registration() noexcept
    {
        // Messages go to TensorRT's logger (getLogger(), linked); failures are logged there.
        initLibDluTrtPlugins(getLogger(), "");
    }
};

Registration const gRegistration;

} // namespace
