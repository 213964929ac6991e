#!/bin/bash
# Every report pvsmt writes for the shipped inputs, one file each, for a byte-for-byte
# comparison of two trees (issue 14: a speed change must leave every report as it was).
#
#   bench/snapshot.sh OUT [XEN_TREE...]    run from a checkout, with its venv active
#   diff -r OUT_BEFORE OUT_AFTER           must print nothing
#
# XEN_TREE: extracted Xen source trees for check-xen (e.g. xen-RELEASE-4.22.0 from
# ../shared/xen/); each gets checkxen-<basename>.txt.  Exit statuses are recorded in the
# files (rc=N) so that a changed status shows in the diff.  No result cache is used.
set -u
out=$1; shift
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PVSMT_NO_CACHE=1
run() { local file=$1; shift; pvsmt "$@" > "$out/$file" 2>&1; echo "rc=$?" >> "$out/$file"; }
run prove.txt prove proofs/
run prove.json prove proofs/ --format json
run prove-unused.txt prove proofs/ --unused-facts
run false.txt prove tests/fixtures/false/ -v
run false.json prove tests/fixtures/false/ --format json
run false3.txt prove tests/fixtures/false/ --max 3 -v
run false3.json prove tests/fixtures/false/ --max 3 --format json
run false3.email prove tests/fixtures/false/ --max 3 --format email
run diff.txt diff xen xen-fred
run diffexp.txt diff xen xen-fred --expect xen--xen-fred
run diffdoc.txt diff pv-traps-doc xen
run diff417.json diff xen-4.17 xen --json
run table.txt table --spec xen
run explain.txt explain --spec specs/xen.spec --set guest=pv32 --set insn=callgate --set gate.table=ldt
run explain.json explain --spec xen --set insn=int_n --set vector=0x80 --json
for tree in "$@"; do
  run "checkxen-$(basename "$tree").txt" check-xen "$tree"
done
{ pvsmt --help; for c in prove diff table explain check-xen validate reproduce extract; do pvsmt $c --help; done; } \
  > "$out/help.txt" 2>&1
