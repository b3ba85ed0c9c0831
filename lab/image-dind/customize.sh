# Runs inside the debootstrapped rootfs of the lab's docker:dind image (lab/lab imports it with
# the official image's ENTRYPOINT ["dockerd-entrypoint.sh"], CMD [], VOLUME /var/lib/docker and
# ENV DOCKER_TLS_CERTDIR=/certs).
set -eu
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc /usr/share/man
# A stand-in for the official image's dockerd-entrypoint.sh (the image's entrypoint), keeping
# its contract, branch for branch: only with no arguments or a first argument that is a flag
# are defaults added, `dockerd --host=unix:///var/run/docker.sock` and, with DOCKER_TLS_CERTDIR
# set (the image's ENV: /certs), a CA, a server and a client certificate generated under it
# (server/, client/ with ca.pem cert.pem key.pem) and tcp 2376 with TLS, else tcp 2375 without.
# An explicit `dockerd ARGS` runs as given: no defaults, no certificates.
cat >/usr/local/bin/dockerd-entrypoint.sh <<'SCRIPT'
#!/bin/sh
set -eu
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
# no arguments passed, or the first is a flag: the official branch that adds the defaults
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
	dockerSocket='unix:///var/run/docker.sock'
	case "${DOCKER_HOST:-}" in
		unix://*) dockerSocket=$DOCKER_HOST ;;
	esac
	if [ -n "${DOCKER_TLS_CERTDIR:-}" ] && gen_certs "$DOCKER_TLS_CERTDIR" \
		&& [ -s "$DOCKER_TLS_CERTDIR/server/ca.pem" ] && [ -s "$DOCKER_TLS_CERTDIR/server/cert.pem" ] \
		&& [ -s "$DOCKER_TLS_CERTDIR/server/key.pem" ]; then
		set -- dockerd --host="$dockerSocket" --host=tcp://0.0.0.0:2376 --tlsverify \
			--tlscacert "$DOCKER_TLS_CERTDIR/server/ca.pem" --tlscert "$DOCKER_TLS_CERTDIR/server/cert.pem" \
			--tlskey "$DOCKER_TLS_CERTDIR/server/key.pem" "$@"
	else
		set -- dockerd --host="$dockerSocket" --host=tcp://0.0.0.0:2375 "$@"
	fi
fi
if [ "$1" = dockerd ]; then
	find /run /var/run -iname 'docker*.pid' -delete 2>/dev/null || :
fi
exec "$@"
SCRIPT
chmod 755 /usr/local/bin/dockerd-entrypoint.sh
