# Runs inside the debootstrapped rootfs of the lab's MinIO stand-in (see minio.py): lab/lab
# copies minio.py and mc.py in as /usr/bin/minio and /usr/bin/mc before this runs.
set -eu
chmod 755 /usr/bin/minio /usr/bin/mc
mkdir -p /data
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc /usr/share/man
