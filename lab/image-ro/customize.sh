# Derives the read-only lab host from the Debian 12 host image (runs in a container of it, then
# committed): a slave like Flatcar/CoreOS — Docker preinstalled, no package manager, /usr read-only.
set -eu
rm -f /usr/bin/apt /usr/bin/apt-get /usr/bin/apt-cache /usr/bin/apt-config /usr/bin/apt-mark \
      /usr/bin/dpkg /usr/bin/dpkg-deb /usr/bin/dpkg-query /usr/bin/dpkg-divert /usr/bin/dpkg-split
cat > /etc/systemd/system/lab-usr-readonly.service <<'UNIT'
[Unit]
Description=Mount /usr read-only (lab: a host whose /usr cannot be written)
DefaultDependencies=no
Before=sysinit.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount --bind /usr /usr
ExecStart=/bin/mount -o remount,bind,ro /usr
[Install]
WantedBy=sysinit.target
UNIT
mkdir -p /etc/systemd/system/sysinit.target.wants
ln -sf /etc/systemd/system/lab-usr-readonly.service /etc/systemd/system/sysinit.target.wants/lab-usr-readonly.service
