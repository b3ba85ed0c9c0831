# Runs inside the debootstrapped rootfs of the lab's docker:dind image.
set -eu
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc /usr/share/man
