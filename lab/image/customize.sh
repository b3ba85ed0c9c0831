# Runs inside the debootstrapped rootfs (chroot) before it becomes the lab host image.
set -eu
# Every host gets its own SSH host keys, generated at boot, never baked into the image.
rm -f /etc/ssh/ssh_host_*
mkdir -p /etc/systemd/system/ssh.service.d
cat > /etc/systemd/system/ssh.service.d/lab-hostkeys.conf <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT
systemctl enable ssh.service docker.service >/dev/null 2>&1 || true
# Units that cannot work in a container only add noise and a degraded state.
for u in getty@tty1.service console-getty.service systemd-udevd.service systemd-udev-trigger.service \
         systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount \
         systemd-remount-fs.service; do
  ln -sf /dev/null "/etc/systemd/system/$u"
done
# A non-root user that works through sudo, as on cloud images (core, ubuntu, admin).
useradd -m -s /bin/sh core
echo 'core ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/core
chmod 0440 /etc/sudoers.d/core
: > /etc/machine-id
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
