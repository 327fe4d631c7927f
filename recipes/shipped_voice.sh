#!/usr/bin/env bash
# How the shipped voices (tf_tacokd/pretrained/<lang>_teacher, <lang>_student) are made, stage
# by stage. Every stage resumes when the same command is run again (after a reboot, a killed
# session, a lost machine with the files kept), and skips what is already done.
#
#   recipes/shipped_voice.sh LANG WORK [STAGE ...]      LANG: en | zh
#
# Stages (default: corpus data teacher):
#   corpus   tacokd make-corpus: 10,000 espeak-ng utterances, sentence seed 0 (the shipped
#            models' corpus; the same seed always draws the same sentences)
#   data     tacokd preprocess with the voice_LANG config
#   teacher  tacokd train with teacher forcing: a long run (60k steps on the schedule) that keeps
#            a snapshot every 1000 steps in WORK/teacher/snapshots; stop it any time
#   student  tacokd distill: the KD student from the snapshot at TEACHER_STEP
#   pack     store both as shipped models (float16) in PACK_DEST
#
# Environment (all optional):
#   THREADS=1            TensorFlow threads (one per run: two runs on two cores train 1.5x
#                        the audio of one run with two threads; RESULTS.md section 11)
#   TEACHER_STEP         the snapshot the student starts from (shipped: en 15000, zh 6000; the
#                        shipped English teacher is 12000 steps and 3000 more continued from them
#                        with TEACHER_INIT, whose run counts from 0: there TEACHER_STEP=3000)
#   TEACHER_INIT         start the teacher from this model's weights (e.g. en_teacher, to
#                        continue the shipped one), with a 200-step learning-rate warm-up
#   STUDENT_STEPS=1000   distillation steps (the shipped students' budget)
#                        (the shipped English student is training seed 1: SET=train.seed=1)
#   PACK_DEST            where pack writes (default: the package's own pretrained folder)
#   CONFIG, SIZE, SET    another config (default voice_LANG), corpus size (default 10000) and
#                        extra "--set KEY=VALUE" options for the data and training stages
#   TACOKD, PYTHON       the tacokd command and the Python of its environment (for pack)
#
# Example (the English voice; a day of CPU on 2 cores for the teacher):
#   nohup recipes/shipped_voice.sh en work/voice_en >> work/voice_en.log 2>&1 &
#   tacokd runs status work/voice_en              # step, last validation, still running?
#   python bench/curve.py --run work/voice_en/teacher --out work/voice_en/curve   # judge curve
#   TEACHER_STEP=15000 recipes/shipped_voice.sh en work/voice_en student pack
set -euo pipefail

lang=${1:?usage: recipes/shipped_voice.sh LANG WORK [STAGE ...]}
work=${2:?usage: recipes/shipped_voice.sh LANG WORK [STAGE ...]}
shift 2
case "$lang" in
  en) step_default=15000 ;;
  zh) step_default=6000 ;;
  *) echo "recipes/shipped_voice.sh: LANG must be en or zh, not '$lang'" >&2; exit 2 ;;
esac
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(corpus data teacher)
for s in "${stages[@]}"; do
  case "$s" in corpus|data|teacher|student|pack) ;; *)
    echo "recipes/shipped_voice.sh: unknown stage '$s' (corpus, data, teacher, student, pack)" >&2; exit 2 ;;
  esac
done

threads=${THREADS:-1}
export TF_NUM_INTRAOP_THREADS=$threads TF_NUM_INTEROP_THREADS=$threads OMP_NUM_THREADS=$threads
config=${CONFIG:-voice_$lang}
size=${SIZE:-10000}
teacher_step=${TEACHER_STEP:-$step_default}
student_steps=${STUDENT_STEPS:-1000}
tacokd=${TACOKD:-tacokd}
read -r -a extra <<< "${SET:-}"
sets=()
for kv in "${extra[@]}"; do sets+=(--set "$kv"); done
mkdir -p "$work"
snapshot=$(printf '%s/teacher/snapshots/model-%07d.keras' "$work" "$teacher_step")

for stage in "${stages[@]}"; do
  echo "== $stage ($(date -u +%FT%TZ))"
  case "$stage" in
    corpus) $tacokd make-corpus --lang "$lang" --out "$work/corpus" --size "$size" --seed 0 ;;
    data) $tacokd preprocess --config "$config" --corpus "$work/corpus" --out "$work/data" --workers 2 "${sets[@]}" ;;
    teacher)
      init=()
      if [ -n "${TEACHER_INIT:-}" ]; then init=(--init "$TEACHER_INIT" --set train.warmup_steps=200); fi
      $tacokd train --config "$config" --data "$work/data" --out "$work/teacher" "${init[@]}" "${sets[@]}" ;;
    student)
      if [ ! -f "$snapshot" ]; then
        echo "recipes/shipped_voice.sh: no teacher snapshot $snapshot; train the teacher that far or set TEACHER_STEP" >&2
        exit 1
      fi
      $tacokd distill --config "$config" --data "$work/data" --teacher "$snapshot" --out "$work/student" \
        --steps "$student_steps" "${sets[@]}" ;;
    pack)
      ${PYTHON:-python} - "$snapshot" "$work/student" "$lang" "${PACK_DEST:-}" <<'PY'
import sys
from tf_tacokd.pretrained import pack
snapshot, student, lang, dest = sys.argv[1:]
for source, which in ((snapshot, "teacher"), (student, "student")):
    print(f"{lang}_{which}: {pack(source, lang, which, dest=dest or None)}")
PY
      ;;
  esac
done
