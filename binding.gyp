# The Node addon: native/*.cc, linked either with the C library compiled from
# vendor/ (default) or with a libvfio-user installed on the system, found
# through pkg-config:
#   node-gyp rebuild --vfio_user_system_lib=true
#   npm install --vfio_user_system_lib=true
# With --vfio_user_sanitize=true the addon and the vendored library are built
# with AddressSanitizer and UBSan (scripts/test-asan.sh; node must then run
# with gcc's libasan preloaded).
{
  'variables': {
    'vfio_user_system_lib%': 'false',
    'vfio_user_sanitize%': 'false',
  },
  'target_defaults': {
    'conditions': [
      ['vfio_user_sanitize=="true"', {
        'cflags': ['-fsanitize=address,undefined', '-fno-sanitize-recover=undefined',
                   '-fno-omit-frame-pointer', '-g'],
        'ldflags': ['-fsanitize=address,undefined'],
      }],
    ],
  },
  'includes': ['vendor/libvfio-user/libvfio-user.gypi'],
  'targets': [
    {
      'target_name': 'vfio_user',
      'sources': [
        'native/addon.cc',
        'native/copy_bytes.cc',
        'native/device_callbacks.cc',
        'native/device_buffers.cc',
        'native/device_context.cc',
        'native/device_dma.cc',
        'native/device_interrupts.cc',
        'native/device_serving.cc',
        'native/device_setup.cc',
        'native/errors.cc',
        'native/fd_watcher.cc',
        'native/js_call.cc',
        'native/migration_callbacks.cc',
        'native/os_helpers.cc',
        'native/poll_driver.cc',
      ],
      'include_dirs': [
        "<!(node -p \"require('node-addon-api').include_dir\")",
      ],
      'defines': [
        'NAPI_VERSION=8',
        'NAPI_DISABLE_CPP_EXCEPTIONS',
        'NODE_ADDON_API_DISABLE_DEPRECATED',
      ],
      'cflags!': ['-fexceptions'],
      'cflags_cc!': ['-fexceptions'],
      'cflags_cc': ['-fno-exceptions', '-fvisibility=hidden', '-Wall', '-Wextra',
                     '-Wno-unused-parameter'],
      'conditions': [
        ['vfio_user_system_lib=="true"', {
          'cflags_cc': ['<!@(pkg-config --cflags libvfio-user)'],
          'libraries': ['<!@(pkg-config --libs libvfio-user)'],
          # A library outside the loader's search path is still found.
          'ldflags': ['-Wl,-rpath,<!(pkg-config --variable=libdir libvfio-user)'],
        }, {
          'dependencies': ['vfio_user_c'],
          # Our library: its extensions (libvfio-user-ext.h) are there.
          'defines': ['VFIO_USER_EXT=1'],
          # Keep the static library's vfu_* symbols out of the addon's
          # dynamic symbol table, so that they cannot clash with another
          # libvfio-user loaded in the same process.
          'ldflags': ['-Wl,--exclude-libs,ALL'],
        }],
      ],
    },
  ],
}
