#!/bin/sh
# make dist: ducky-<version>.tar.gz of the tracked files and the release rockspec
# that fetches it from <url>, both in <dir>.
#   tools/dist.sh VERSION DIR URL DEV_ROCKSPEC
set -eu
version=$1 dir=$2 url=$3 dev=$4
name=ducky-$version
mkdir -p "$dir"
# the committed tree; a dirty checkout is refused, so a tarball is always a commit
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
	echo "dist: uncommitted changes; commit them first" >&2
	exit 1
fi
git archive --format=tar --prefix="$name/" HEAD | gzip -9n >"$dir/$name.tar.gz"
md5=$(md5sum "$dir/$name.tar.gz" | cut -d' ' -f1)
{
	echo "-- ducky $version, made by make dist from $dev: the release tarball at DIST_URL."
	sed -e '/^--/d' -e "s|^version = .*|version = \"$version-1\"|" \
		-e "s|^source = .*|source = { url = \"$url/$name.tar.gz\", md5 = \"$md5\", dir = \"$name\" }|" \
		"$dev"
} >"$dir/$name-1.rockspec"
echo "$dir/$name.tar.gz"
echo "$dir/$name-1.rockspec"
