#!/bin/sh
# make dist: ducky-<version>.tar.gz of the tracked files and the release rockspec
# that fetches it from <url>, both in <dir>. Made from a commit with git archive,
# so only in a git checkout of ducky; anywhere else (an unpacked release) it
# stops with a message and makes nothing.
#   tools/dist.sh VERSION DIR URL DEV_ROCKSPEC
set -eu
version=$1 dir=$2 url=$3 dev=$4
name=ducky-$version
fail() {
	echo "dist: $*" >&2
	exit 1
}
# this directory must be the top of a git checkout (not a tree unpacked inside another one)
top=$(git rev-parse --show-toplevel 2>/dev/null) || top=
if [ "$top" != "$(pwd -P)" ]; then
	fail "$(pwd) is not a git checkout of ducky: a release tarball is made from a commit" \
		"(git archive). An unpacked release already is one: its tarball is the release."
fi
# the committed tree; a dirty checkout is refused, so a tarball is always a commit
status=$(git status --porcelain --untracked-files=no) || fail "git status failed"
[ -z "$status" ] || fail "uncommitted changes; commit them first"
mkdir -p "$dir"
tmp=$dir/$name.tar.tmp
trap 'rm -f "$tmp" "$tmp.gz"' EXIT
# tar.umask 0022: git's default (0002) makes every entry group-writable, and tar run as
# root (a packager's build) keeps the modes it finds
git -c tar.umask=0022 archive --format=tar --prefix="$name/" HEAD >"$tmp" || fail "git archive failed"
gzip -9n <"$tmp" >"$tmp.gz"
# a real release: it holds this version's VERSION file
[ "$(tar -xzOf "$tmp.gz" "$name/VERSION" 2>/dev/null)" = "$version" ] ||
	fail "the tarball made holds no $name/VERSION saying $version"
mv -f "$tmp.gz" "$dir/$name.tar.gz"
md5=$(md5sum "$dir/$name.tar.gz" | cut -d' ' -f1)
{
	echo "-- ducky $version, made by make dist from $dev: the release tarball at DIST_URL."
	sed -e '/^--/d' -e "s|^version = .*|version = \"$version-1\"|" \
		-e "s|^source = .*|source = { url = \"$url/$name.tar.gz\", md5 = \"$md5\", dir = \"$name\" }|" \
		"$dev"
} >"$dir/$name-1.rockspec"
echo "$dir/$name.tar.gz"
echo "$dir/$name-1.rockspec"
