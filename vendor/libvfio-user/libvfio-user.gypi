# The C library as a static library for the Node addon (binding.gyp includes
# this file). The same sources as CMakeLists.txt's, with its flags: gnu11,
# _GNU_SOURCE, every symbol hidden but the public API.
{
  'conditions': [
    ['vfio_user_system_lib!="true"', {
      'targets': [
        {
          'target_name': 'vfio_user_c',
          'type': 'static_library',
          'sources': [
            'src/context.c',
            'src/dirty.c',
            'src/dma.c',
            'src/dma_transfer.c',
            'src/ext.c',
            'src/ioeventfd.c',
            'src/irq.c',
            'src/irq_messages.c',
            'src/json.c',
            'src/log.c',
            'src/migration.c',
            'src/msix.c',
            'src/negotiate.c',
            'src/pci.c',
            'src/pci_caps.c',
            'src/region.c',
            'src/run.c',
            'src/sgl.c',
            'src/transport.c',
            'src/transport_newcomer.c',
            'src/transport_recv.c',
            'src/transport_send.c',
          ],
          'include_dirs': ['include', 'src'],
          'defines': ['_GNU_SOURCE'],
          'cflags': ['-fPIC', '-fvisibility=hidden', '-Wall', '-Wextra', '-Wno-unused-parameter'],
          'cflags_c': ['-std=gnu11'],
          'direct_dependent_settings': {
            'include_dirs': ['include'],
          },
        },
      ],
    }],
  ],
}
