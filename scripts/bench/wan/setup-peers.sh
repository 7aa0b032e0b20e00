#!/usr/bin/env bash
# Installs the tools the wide-area comparison runs against: an sshd to start inside
# the destination namespace (the system's own sshd is never started or configured),
# the ssh/scp client, sshfs (streaming), rclone (write-back cache), rsync (staging).
# Debian's sshfs pulls fuse3 and replaces the fuse (fuse2) package; libfuse2, which
# kangaroo's mount loads, stays, and fusermount becomes fusermount3, which still
# unmounts fuse2 mounts. The harness runs this script only when
# one of the tools is missing. nftables drops all traffic inside the namespace for a
# silent link cut (this kernel has no tc matchall classifier or drop action).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-peers.sh: needs root (apt-get)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# policy-rc.d 101 keeps the package scripts from starting the system sshd: the
# harness starts its own, inside the namespace, with its own configuration.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get install -y -q --no-install-recommends openssh-server openssh-client sshfs rclone rsync nftables libfuse2
