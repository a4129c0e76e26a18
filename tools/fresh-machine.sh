#!/bin/sh
# The first ten minutes on a machine that has none of ducky's packages, rerunnable:
# a minimal Debian (debootstrap --variant=minbase bookworm), a clean clone of BRANCH
# in it, and in a chroot:
#   0. as a user:  make demo             -> no make; as root: apt-get install make
#   1. as a user:  make demo             -> prints the apt-get line, fails
#   2. as root:    make demo, make test  -> install what is missing, then green
#   3. as a user:  make demo, make test  -> green (nothing left to install)
#   (FRESH_CI=1) as root: bash .ci/run in a third clean clone
# Each step's output is in $OUT/<step>.log, and a summary in $OUT/summary.
#   sudo tools/fresh-machine.sh [BRANCH]       (default: the current branch)
# Not part of make test: it needs root, debootstrap, the Debian mirror and an hour.
# FRESH_BASE keeps the debootstrapped system between runs (it is copied, never
# changed), FRESH_APT_CACHE the downloaded .deb files (not installed ones).
set -eu
repo=$(git rev-parse --show-toplevel)
branch=${1:-$(git -C "$repo" rev-parse --abbrev-ref HEAD)}
base=${FRESH_BASE:-/var/tmp/ducky-fresh-base}
root=${FRESH_ROOT:-/var/tmp/ducky-fresh}
cache=${FRESH_APT_CACHE:-/var/tmp/ducky-fresh-apt}
OUT=${OUT:-$root.out}
[ "$(id -u)" = 0 ] || { echo "fresh-machine: run it as root (debootstrap, chroot, mount)" >&2; exit 1; }
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }

if [ ! -f "$base/etc/debian_version" ]; then
	rm -rf "$base"
	debootstrap --variant=minbase bookworm "$base"
fi
rm -rf "$root" "$OUT"
mkdir -p "$OUT" "$cache"
cp -a "$base" "$root"
# what every container image does: packages installed in a chroot start no services
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"

mounted=""
mnt() { # mnt ARGS... TARGET
	eval "target=\${$#}"
	mount "$@"
	mounted="$target $mounted"
}
cleanup() {
	for m in $mounted; do umount -l "$m" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mnt -t proc proc "$root/proc"
mnt -t sysfs sysfs "$root/sys"
mnt --bind /dev "$root/dev"
mnt --bind /dev/pts "$root/dev/pts"
mnt -t tmpfs -o mode=1777 shm "$root/dev/shm"
mnt --bind "$cache" "$root/var/cache/apt/archives"

# two clean clones of the branch: root's and the user's, in directories anyone may enter
git clone -q --branch "$branch" "$repo" "$root/srv/ducky"
git clone -q --branch "$branch" "$repo" "$root/srv/ducky-user"
chroot "$root" useradd -m -s /bin/sh tester
chroot "$root" chown -R tester:tester /srv/ducky-user

PATHS=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
as_root() { chroot "$root" env -i HOME=/root PATH=$PATHS LANG=C.UTF-8 sh -c "cd /srv/ducky && $1"; }
as_user() {
	chroot --userspec=tester:tester "$root" env -i HOME=/home/tester USER=tester PATH=$PATHS \
		LANG=C.UTF-8 sh -c "cd /srv/ducky-user && $1"
}
step() { # step NAME as_root|as_user COMMAND: runs it, logs it, notes its exit status
	name=$1 who=$2 cmd=$3
	echo "== $name: $who $cmd" | tee -a "$OUT/summary"
	start=$(date +%s)
	rc=0
	$who "$cmd" >"$OUT/$name.log" 2>&1 || rc=$?
	echo "   exit $rc after $(($(date +%s) - start)) s; last lines:" | tee -a "$OUT/summary"
	tail -n 4 "$OUT/$name.log" | sed 's/^/   | /' | tee -a "$OUT/summary"
}
# minbase, like a standard Debian install, has no make: the README's one prerequisite
step 0-user-demo as_user "make demo"
step 0-root-make as_root "apt-get update -qq && apt-get install -y -qq make >/dev/null"
step 1-user-demo as_user "make demo"
step 2-root-demo as_root "make demo"
step 3-root-test as_root "make test"
step 4-user-demo as_user "make demo"
step 5-user-test as_user "make test"
# FRESH_CI=1: then CI as it runs, from a third clean clone
if [ "${FRESH_CI:-0}" = 1 ]; then
	git clone -q --branch "$branch" "$repo" "$root/srv/ducky-ci"
	step 6-root-ci as_root "cd /srv/ducky-ci && CI=true bash .ci/run </dev/null"
fi
echo "logs: $OUT"
