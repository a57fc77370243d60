#!/usr/bin/env bash
# The shell half of the composite actions: install the package, run one CLI command, write
# the step outputs. Every value arrives through the environment (ORCH_*), never through
# ${{ }} in a script, so untrusted text cannot become shell code.
#
#   steps.sh install                 uv-install this checkout of the package into a venv, with
#                                    the extras in ORCH_EXTRAS (space-separated; "" = the core
#                                    only; unset = all), bytecode for the package itself
#   steps.sh plan|task|aggregate     run that command with the ORCH_* settings
#   steps.sh stage-task              copy tasks/<id>/ of the run folder into the upload folder
#   steps.sh task-names              the task's wave and artifact name, and the vendor CLIs its
#                                    chain runs (and their folder), as step outputs
#   steps.sh agent-clis              install the vendor CLIs ORCH_AGENT_CLIS names (npm, only
#                                    those missing); ORCHESTRATOR_AGENT_CLIS for the next steps
#   steps.sh stacks-complete         whether every earlier wave's stack was downloaded
#   steps.sh stage-stack             wave ORCH_WAVE's stack (result + patch per task) → stack/
#   steps.sh reuse                   /retry: the reused tasks' folders from the earlier workflow
#                                    run's artifacts (REST API) → reused/
#   steps.sh sandbox-setup           make sure bubblewrap can run (install it; Ubuntu 24.04's
#                                    AppArmor profile); never fails: without it run_command is
#                                    not offered and verify is skipped, each saying why
#   steps.sh verify                  the verify stage; stages verify.json and fix-*/resolve-*
#   steps.sh progress                update the tracking comment with the results so far
#   steps.sh quality                 read PR states and reactions into ORCH_HISTORY, then write
#                                    `orchestrator stats` of it into the job summary
#   steps.sh check-needs             fail when an earlier job of the run failed or was cancelled
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
package="$(cd "$here/.." && pwd)"
work="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/orchestrator"
run_dir="$work/run"           # plan.json + tasks/<id>/ (downloaded artifacts, task output)
agg_dir="$work/aggregate"     # aggregate.json, summary.md, kept conflict patches
stage_dir="$work/stage"       # what a task job uploads: tasks/<id>/
stack_dir="$work/stack"       # what a progress job uploads: the stack of its wave

out() { printf '%s=%s\n' "$1" "$2" >>"${GITHUB_OUTPUT:-/dev/null}"; }

install() {
  local venv="$work/venv" python="${ORCH_PYTHON:-}" site extra
  local -a extras=() args=()
  if [ -z "$python" ]; then python="$(command -v python3)"; fi
  # ORCH_EXTRAS: the extras this job needs, space-separated (orchestrator/extras.py decides);
  # set but empty: the core only; unset: every extra, for callers that do not say.
  if [ -z "${ORCH_EXTRAS+set}" ]; then
    extras=(all)
  else
    read -ra extras <<<"${ORCH_EXTRAS//[$'\n\r\t',]/ }"
  fi
  for extra in "${extras[@]}"; do args+=(--extra "$extra"); done
  mkdir -p "$work"
  # Our package's wheel is reused from the uv cache only when built from the same files
  # (pyproject.toml [tool.uv] cache-keys), never one of other code of the same version.
  UV_PROJECT_ENVIRONMENT="$venv" UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=0 \
    uv sync --project "$package" --frozen --no-dev --no-editable --quiet --python "$python" \
    "${args[@]}"
  # Bytecode for our own package only: it is what every command imports, ~100 files compile in
  # well under a second, while compiling the dependencies (10,000+ files) costs seconds per job.
  # -I: the installed package, not an orchestrator/ folder in the working directory.
  site="$("$venv/bin/python" -I -c 'import orchestrator, os; print(os.path.dirname(orchestrator.__file__))')"
  "$venv/bin/python" -I -m compileall -q "$site"
  echo "$venv/bin" >>"${GITHUB_PATH:-/dev/null}"
  "$venv/bin/orchestrator" --help >/dev/null
  echo "orchestrator installed from $package into $venv (extras: ${extras[*]:-none, the core only})"
}

# The venv's python always runs isolated (-I): the working directory is the user's checkout,
# and an orchestrator/ folder there must never be imported in place of the installed package.
bin() { echo "$work/venv/bin/$1"; }

split_tasks() {  # "a; b\nc" → one --task per item
  local item
  while IFS= read -r item; do
    item="${item#"${item%%[![:space:]]*}"}"; item="${item%"${item##*[![:space:]]}"}"
    if [ -n "$item" ]; then printf '%s\0' --task "$item"; fi
  done < <(printf '%s\n' "${ORCH_TASKS:-}" | tr ';' '\n')
}

plan() {
  local -a args=(plan --out "$run_dir" --repo "${GITHUB_WORKSPACE:-.}")
  if [ -n "${ORCH_CONFIG:-}" ]; then args+=(--config "$ORCH_CONFIG"); fi
  if [ -n "${ORCH_MAX_PARALLEL:-}" ]; then args+=(--max-parallel "$ORCH_MAX_PARALLEL"); fi
  local -a items=()
  mapfile -d '' items < <(split_tasks)
  if [ -n "${ORCH_WORKFLOW:-}" ]; then
    args+=(--workflow "$ORCH_WORKFLOW" "${items[@]}")
  elif [ -n "${ORCH_REQUEST:-}" ]; then
    args+=(--request "$ORCH_REQUEST")
  elif [ "${#items[@]}" -gt 0 ]; then
    args+=("${items[@]}")
  else
    args+=(--event "${GITHUB_EVENT_PATH:?}" --event-name "${GITHUB_EVENT_NAME:?}")
  fi
  if [ "${ORCH_PUBLISH:-false}" = "true" ]; then args+=(--publish); fi
  if [ -n "${ORCH_CONFIRM_PERMISSION:-}" ]; then
    args+=(--confirm-permission "$ORCH_CONFIRM_PERMISSION")
  fi
  planner_extras "${items[@]}"
  mkdir -p "$run_dir"
  "$(bin orchestrator)" "${args[@]}"
  "$(bin python)" -I -m orchestrator.github.actions plan-outputs --plan "$run_dir/plan.json"
}

planner_extras() {  # "$@": the --task items; adds the LLM planner's SDK when it may run
  if [ -n "${ORCH_WORKFLOW:-}" ] || [ "$#" -gt 0 ]; then return 0; fi  # a template plans it
  local -a query=(plan-job --repo "${GITHUB_WORKSPACE:-.}")
  if [ -n "${ORCH_CONFIG:-}" ]; then query+=(--config "$ORCH_CONFIG"); fi
  if [ "${ORCH_PUBLISH:-false}" = "true" ]; then query+=(--publish); fi
  if [ -z "${ORCH_REQUEST:-}" ]; then query+=(--event-name "${GITHUB_EVENT_NAME:-}"); fi
  local wanted
  # A config error is the plan command's to report (exit 2, naming the file): not here.
  wanted="$("$(bin python)" -I -m orchestrator.extras "${query[@]}" 2>/dev/null)" || return 0
  if [ -n "$wanted" ] && [ "$wanted" != "github" ]; then
    ORCH_EXTRAS="github $wanted" install
  fi
}

task() {
  local plan_file="${ORCH_PLAN:-$run_dir/plan.json}" results="${ORCH_RESULTS:-$run_dir}" code=0
  local -a args=(task --plan "$plan_file" --task "${ORCH_TASK:?}" --repo "${GITHUB_WORKSPACE:-.}"
    --out "$results")
  if [ -n "${ORCH_CONFIG:-}" ]; then args+=(--config "$ORCH_CONFIG"); fi
  "$(bin orchestrator)" "${args[@]}" || code=$?
  out exit-code "$code"
  if [ -f "$results/tasks/$ORCH_TASK/result.json" ]; then
    out status "$("$(bin python)" -I -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' \
      "$results/tasks/$ORCH_TASK/result.json")"
  else
    out status missing
  fi
  if [ "${ORCH_DEFER_EXIT:-false}" != "true" ]; then return "$code"; fi
}

stage_task() {
  rm -rf "$stage_dir" && mkdir -p "$stage_dir/tasks"
  if [ -d "$run_dir/tasks/${ORCH_TASK:?}" ]; then
    cp -R "$run_dir/tasks/$ORCH_TASK" "$stage_dir/tasks/"
  else
    echo "::error title=orchestrator task::task $ORCH_TASK left no files"
  fi
}

artifacts() { "$(bin python)" -I -m orchestrator.github.artifacts "$@"; }

task_names() {
  artifacts task-names --plan "$run_dir/plan.json" --task "${ORCH_TASK:?}"
  out agent-clis-dir "$(agent_clis_dir)"
}

# Where the task job's vendor CLIs live (kept between runs by actions/cache); a caller's
# ORCHESTRATOR_AGENT_CLIS wins.
agent_clis_dir() { echo "${ORCHESTRATOR_AGENT_CLIS:-${RUNNER_TOOL_CACHE:-$work}/orchestrator-agent-clis}"; }

agent_clis() {  # ORCH_AGENT_CLIS: "provider@version ..." (task-names' agent-clis output)
  local dir installed=false cli
  local -a clis=()
  dir="$(agent_clis_dir)"
  read -ra clis <<<"${ORCH_AGENT_CLIS:-}"
  if [ "${#clis[@]}" -eq 0 ]; then return 0; fi
  for cli in "${clis[@]}"; do
    if [ ! -d "$dir/${cli/@/-}" ]; then installed=true; fi
  done
  "$(bin python)" -I -m orchestrator.agent_clis.install --dir "$dir" "${clis[@]}"
  echo "ORCHESTRATOR_AGENT_CLIS=$dir" >>"${GITHUB_ENV:-/dev/null}"
  out installed "$installed"
}

stacks_complete() {
  artifacts stacks-complete --plan "$run_dir/plan.json" --results "$run_dir" --task "${ORCH_TASK:?}"
}

stage_stack() {
  artifacts stage-stack --plan "$run_dir/plan.json" --results "$run_dir" --wave "${ORCH_WAVE:?}" \
    --out "$stack_dir"
}

reuse() {
  rm -rf "$work/reused"
  "$(bin python)" -I -m orchestrator.github.reuse --plan "$run_dir/plan.json" --out "$work/reused"
}

aggregate() {
  local plan_file="${ORCH_PLAN:-$run_dir/plan.json}" results="${ORCH_RESULTS:-$run_dir}" code=0
  local -a args=(aggregate --plan "$plan_file" --results "$results" --out "$agg_dir"
    --repo "${GITHUB_WORKSPACE:-.}")
  if [ -n "${ORCH_CONFIG:-}" ]; then args+=(--config "$ORCH_CONFIG"); fi
  if [ "${ORCH_PUBLISH:-false}" = "true" ]; then args+=(--publish); fi
  if [ -n "${ORCH_HISTORY:-}" ]; then args+=(--history "$ORCH_HISTORY"); fi
  mkdir -p "$agg_dir"
  "$(bin orchestrator)" "${args[@]}" || code=$?
  out exit-code "$code"
  if [ -f "$agg_dir/aggregate.json" ]; then
    "$(bin python)" -I -m orchestrator.github.actions aggregate-outputs \
      --aggregate "$agg_dir/aggregate.json" --summary "$agg_dir/summary.md"
  else
    echo "::error title=orchestrator aggregate::no aggregate.json (exit $code)"
    out status failed
    [ "$code" -ne 0 ] || code=1
  fi
  if [ "${ORCH_DEFER_EXIT:-false}" != "true" ]; then return "$code"; fi
}

sandbox_setup() {
  "$here/sandbox-setup.sh"
  "$(bin orchestrator)" sandbox || true
}

verify() {
  local plan_file="${ORCH_PLAN:-$run_dir/plan.json}" results="${ORCH_RESULTS:-$run_dir}"
  local -a args=(verify --plan "$plan_file" --results "$results" --repo "${GITHUB_WORKSPACE:-.}")
  if [ -n "${ORCH_CONFIG:-}" ]; then args+=(--config "$ORCH_CONFIG"); fi
  "$(bin orchestrator)" "${args[@]}"
  rm -rf "$stage_dir" && mkdir -p "$stage_dir/tasks"
  cp "$results/verify.json" "$stage_dir/"
  local folder
  for folder in "$results"/tasks/fix-* "$results"/tasks/resolve-*; do
    if [ -d "$folder" ]; then cp -R "$folder" "$stage_dir/tasks/"; fi
  done
  out status "$("$(bin python)" -I -c 'import json,sys; print(json.load(open(sys.argv[1]))["verify"]["status"])' \
    "$results/verify.json")"
}

progress() {
  "$(bin orchestrator)" progress --plan "$run_dir/plan.json" --results "$run_dir"
}

quality() {  # ORCH_HISTORY: the run history (restored from the cache by the caller)
  local history="${ORCH_HISTORY:?ORCH_HISTORY (the history file) is required}"
  local stats="$work/stats.md"
  "$(bin orchestrator)" quality --history "$history"
  if [ -f "$history" ]; then
    "$(bin orchestrator)" stats "$history" --out "$stats"
    cat "$stats" >>"${GITHUB_STEP_SUMMARY:-/dev/null}"
  else
    printf '%s\n' "No orchestrator run history yet: it is saved by the aggregate job of each run." \
      >>"${GITHUB_STEP_SUMMARY:-/dev/null}"
  fi
}

check_needs() {  # ORCH_NEEDS: toJSON(needs); ORCH_EXIT: the aggregate command's exit code
  "$(bin python)" -I - <<'PY'
import json, os, sys
needs = json.loads(os.environ.get("ORCH_NEEDS") or "{}")
bad = {job: n.get("result") for job, n in needs.items() if n.get("result") in ("failure", "cancelled")}
for job, result in sorted(bad.items()):
    print(f"::error title=orchestrator::job {job} {result}")
code = os.environ.get("ORCH_EXIT", "0")
if code != "0":
    print(f"::error title=orchestrator::aggregate exited {code}: the run did not fully succeed")
sys.exit(1 if bad or code != "0" else 0)
PY
}

case "${1:-}" in
  install) install ;;
  plan) plan ;;
  task) task ;;
  stage-task) stage_task ;;
  task-names) task_names ;;
  agent-clis) agent_clis ;;
  stacks-complete) stacks_complete ;;
  stage-stack) stage_stack ;;
  reuse) reuse ;;
  aggregate) aggregate ;;
  progress) progress ;;
  quality) quality ;;
  check-needs) check_needs ;;
  sandbox-setup) sandbox_setup ;;
  verify) verify ;;
  *) echo "usage: steps.sh install|plan|task|stage-task|task-names|agent-clis|stacks-complete|stage-stack|reuse|aggregate|progress|quality|check-needs|sandbox-setup|verify" >&2; exit 2 ;;
esac
