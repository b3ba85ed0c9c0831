# Runs inside the debootstrapped rootfs of the lab's docker:dind image (lab/lab imports it with
# the official image's ENTRYPOINT ["dockerd-entrypoint.sh"] and VOLUME /var/lib/docker).
set -eu
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc /usr/share/man
# A stand-in for the official image's dockerd-entrypoint.sh (the image's entrypoint), keeping
# its contract: `dockerd ARGS` or bare `--flags` (dockerd prepended); with DOCKER_TLS_CERTDIR
# set, a CA, a server and a client certificate are generated under it (server/, client/ with
# ca.pem cert.pem key.pem) and, when no --host is given, dockerd listens on tcp 2376 with TLS.
cat >/usr/local/bin/dockerd-entrypoint.sh <<'SCRIPT'
#!/bin/sh
set -eu
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
	set -- dockerd "$@"
fi
gen_certs() {
	dir=$1
	mkdir -p "$dir/ca" "$dir/server" "$dir/client"
	if [ ! -s "$dir/ca/key.pem" ]; then
		openssl genrsa -out "$dir/ca/key.pem" 4096 2>/dev/null
		openssl req -new -x509 -days 825 -key "$dir/ca/key.pem" -out "$dir/ca/cert.pem" -subj '/CN=docker:dind CA'
	fi
	for who in server client; do
		# A certificate kept in a reused volume stays only if this CA signed it.
		openssl verify -CAfile "$dir/ca/cert.pem" "$dir/$who/cert.pem" >/dev/null 2>&1 && continue
		openssl genrsa -out "$dir/$who/key.pem" 4096 2>/dev/null
		openssl req -new -key "$dir/$who/key.pem" -out "$dir/$who/csr.pem" -subj "/CN=docker:dind $who"
		if [ "$who" = server ]; then
			printf 'subjectAltName=DNS:docker,DNS:localhost,DNS:%s,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' "$(uname -n)" >"$dir/$who/ext.cnf"
		else
			printf 'extendedKeyUsage=clientAuth\n' >"$dir/$who/ext.cnf"
		fi
		openssl x509 -req -days 825 -in "$dir/$who/csr.pem" -CA "$dir/ca/cert.pem" -CAkey "$dir/ca/key.pem" \
			-CAcreateserial -extfile "$dir/$who/ext.cnf" -out "$dir/$who/cert.pem" 2>/dev/null
		cp "$dir/ca/cert.pem" "$dir/$who/ca.pem"
		rm -f "$dir/$who/csr.pem" "$dir/$who/ext.cnf"
	done
	chmod -R a+rX "$dir/client"
}
if [ "$1" = dockerd ]; then
	find /run /var/run -iname 'docker*.pid' -delete 2>/dev/null || :
	has_host=no
	for a in "$@"; do case $a in -H|--host|-H=*|--host=*) has_host=yes ;; esac; done
	if [ -n "${DOCKER_TLS_CERTDIR:-}" ]; then
		gen_certs "$DOCKER_TLS_CERTDIR"
		if [ "$has_host" = no ]; then
			c=$DOCKER_TLS_CERTDIR/server
			set -- "$@" --host=unix:///var/run/docker.sock --host=tcp://0.0.0.0:2376 --tlsverify \
				--tlscacert "$c/ca.pem" --tlscert "$c/cert.pem" --tlskey "$c/key.pem"
		fi
	elif [ "$has_host" = no ]; then
		set -- "$@" --host=unix:///var/run/docker.sock
	fi
fi
exec "$@"
SCRIPT
chmod 755 /usr/local/bin/dockerd-entrypoint.sh
