#!/usr/bin/env bash
# Collect how many digits of each committed summary table survive a regeneration, into
# figures/reproducibility/digits.csv (see docs/design/reproducibility.md).
#
#   bash scripts/collect_digits.sh HERE NATIVE BEFORE
#
# HERE, NATIVE and BEFORE are folders holding one output folder per study, as written by
#   odebench run studies/NAME.toml --out HERE/NAME --workers 1
# on this machine (HERE), the same with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (NATIVE),
# and with the code of another commit (BEFORE). A study missing from a folder is skipped; for
# the comparison with the committed table HERE falls back to BEFORE.
set -euo pipefail
if [ $# -ne 3 ]; then
    echo "usage: bash scripts/collect_digits.sh HERE NATIVE BEFORE" >&2
    exit 2
fi
here_dir=$1; native_dir=$2; before_dir=$3
cd "$(dirname "$0")/.."
out=figures/reproducibility/digits.csv
python=${PYTHON:-python}
compare() { "$python" scripts/compare_tables.py "$@" --out "$out.new" > /dev/null; }
rm -f "$out.new"
# study, run folder, committed summary
while read -r study run committed; do
    file=$(basename "$committed")
    by=problem
    head -1 "$committed" | grep -q '^problem,\|,problem,' || by=""
    here=$here_dir/$run/$file
    [ -f "$here" ] || here=$before_dir/$run/$file
    if [ -f "$here" ]; then
        compare "$committed" "$here" --by "$by" --label "$study: committed (another machine) vs this machine"
    fi
    if [ -f "$before_dir/$run/$file" ] && [ -f "$native_dir/$run/$file" ]; then
        compare "$before_dir/$run/$file" "$native_dir/$run/$file" --by "$by" \
            --label "$study: this machine, OpenBLAS Haswell vs native kernel"
    fi
    if [ -f "$before_dir/$run/$file" ] && [ -f "$here_dir/$run/$file" ]; then
        compare "$before_dir/$run/$file" "$here_dir/$run/$file" --by "$by" \
            --label "$study: code before vs after the rebuild"
    fi
done <<'STUDIES'
orders orders figures/orders/orders_summary.csv
norms norms figures/norms/norms_summary.csv
singularity singularity figures/singularity/singularity_summary.csv
singularity_exponents singularity figures/singularity/singularity_exponents.csv
networks_orders networks_orders figures/networks/orders/networks_orders_summary.csv
networks_norms networks_norms figures/networks/norms/networks_norms_summary.csv
digits_orders digits_orders figures/networks/digits_orders/digits_orders_summary.csv
modern modern figures/modern/modern_summary.csv
audit audit figures/audit/audit_summary.csv
quality quality figures/quality/quality_summary.csv
quality_values quality figures/quality/quality.csv
STUDIES
mv "$out.new" "$out"
