# Sourced by setup.sh: run a quiet command while saying, every PROGRESS_EVERY seconds (10), that it
# is still working, how long it has taken and the last line of its log.
#
#   with_progress LOG LABEL COMMAND...    # COMMAND's output goes to LOG; returns its exit status

with_progress() {
  local log=$1 label=$2
  shift 2
  local every=${PROGRESS_EVERY:-10} start=$SECONDS next
  next=$every
  "$@" >> "$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( SECONDS - start >= next )) && kill -0 "$pid" 2>/dev/null; then
      local last
      last=$(tail -n 1 "$log" 2>/dev/null | tr -d '\r' | cut -c1-70)
      echo "  ... $label: $((SECONDS - start)) s${last:+ ($last)}"
      next=$((next + every))
    fi
  done
  wait "$pid"
}
