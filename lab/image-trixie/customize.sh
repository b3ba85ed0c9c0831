# Runs inside the debootstrapped Debian 13 rootfs (chroot) before it becomes a lab host image.
set -eu
rm -f /etc/ssh/ssh_host_*
mkdir -p /etc/systemd/system/ssh.service.d /etc/systemd/system/docker.service.d
cat > /etc/systemd/system/ssh.service.d/lab-hostkeys.conf <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT
# Docker 26 nested in a container cannot disable IPv6 on a container's interface without this.
cat > /etc/systemd/system/docker.service.d/lab-ipv6.conf <<'UNIT'
[Service]
Environment=DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1
UNIT
systemctl enable ssh.service docker.service >/dev/null 2>&1 || true
for u in getty@tty1.service console-getty.service systemd-udevd.service systemd-udev-trigger.service \
         systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount \
         systemd-remount-fs.service systemd-networkd-wait-online.service; do
  ln -sf /dev/null "/etc/systemd/system/$u"
done
useradd -m -s /bin/sh core
echo 'core ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/core
chmod 0440 /etc/sudoers.d/core
: > /etc/machine-id
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
