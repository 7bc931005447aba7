"""Guest images: recipes, Debian packages, kernels and modules, the initramfs, the cache."""
