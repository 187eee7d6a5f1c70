{
  # The addon: native/core (the storage engine, plain C++20) plus
  # native/binding (node-addon-api marshalling). Sources are listed by
  # scripts/gyp-sources.js: every native/core/*.cc except tests, and every
  # native/binding/*.cc. node-addon-api runs with C++ exceptions enabled
  # (NAPI_CPP_EXCEPTIONS): the binding throws Napi::Error.
  'targets': [
    {
      'target_name': 'tierstore',
      'sources': [ '<!@(node scripts/gyp-sources.js)' ],
      'include_dirs': [ 'native/core', 'native/binding' ],
      'dependencies': [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: in a worker thread being
      # terminated an error can no longer be thrown into JS; without it
      # node-addon-api rethrows it as a C++ exception and the whole process
      # aborts.
      'defines': [ 'NAPI_VERSION=8', 'NODE_ADDON_API_DISABLE_DEPRECATED', 'NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS' ],
      'cflags!': [ '-fno-exceptions', '-O2', '-O0' ],
      'cflags_cc!': [ '-fno-exceptions', '-fno-rtti', '-std=gnu++17', '-std=gnu++1y', '-O2', '-O0' ],
      'cflags': [ '-O3', '-fvisibility=hidden' ],
      'cflags_cc': [ '-std=c++20', '-fexceptions', '-frtti', '-O3', '-Wall', '-Wextra', '-Wno-unused-parameter' ],
      'ldflags': [ '-pthread' ],
      'xcode_settings': {
        'GCC_ENABLE_CPP_EXCEPTIONS': 'YES',
        'GCC_ENABLE_CPP_RTTI': 'YES',
        'CLANG_CXX_LANGUAGE_STANDARD': 'c++20',
        'MACOSX_DEPLOYMENT_TARGET': '11.0',
        'OTHER_CPLUSPLUSFLAGS': [ '-O3' ]
      }
    }
  ]
}
