"""Metrics page section: how the model holds up on everyday audio, from the robustness bench's record.

`bench/bench_robustness.py --record-in VERSION` stores its summary in the card as
`evaluation.robustness`; nothing is measured here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from models.classifier.bundle import ModelCard

ROW_PX = 35  # st.dataframe's row height: the whole table shows, no inner scroll
LABELS = {
    "mp3_64k": "MP3 64 kbps", "aac_96k": "AAC 96 kbps", "gain_-20dB": "−20 dB gain",
    "gain_+12dB_limited": "+12 dB into a limiter", "lowpass_4k": "4 kHz low-pass",
    "phone_300-3400": "phone band 300-3400 Hz", "pink_noise_20dB": "pink noise, 20 dB SNR",
    "pitch_+1": "pitch +1 semitone (phase vocoder)", "pitch_-1": "pitch −1 semitone (phase vocoder)",
    "tempo_+6%": "tempo +6 % (phase vocoder)", "tempo_-6%": "tempo −6 % (phase vocoder)",
    "mono_8k_round_trip": "mono 8 kHz round trip", "first_10s": "first 10 s only",
    "speed_+6%": "speed +6 % (pitch and tempo, resampled)", "speed_-6%": "speed −6 % (pitch and tempo, resampled)",
}


def robustness_table(entry: dict[str, Any]) -> pd.DataFrame:
    """One row per condition: accuracy, drop from clean in points, and whether it counts in the mean."""
    clean = float(entry["clean_accuracy"])
    rows = [{"condition": "clean", "accuracy": clean, "drop (points)": 0.0, "in the mean": ""}]
    for part, counted in (("accuracy", "yes"), ("context_accuracy", "no: context")):
        for name, acc in entry.get(part, {}).items():
            rows.append({"condition": LABELS.get(name, name), "accuracy": float(acc),
                         "drop (points)": round(100 * (clean - float(acc)), 1), "in the mean": counted})
    return pd.DataFrame(rows)


def render_robustness(card: ModelCard) -> None:
    """The bench's table and mean drop for this version, or how to measure it."""
    st.subheader("On everyday audio", anchor=False)
    entry = card.evaluation.get("robustness")
    if not isinstance(entry, dict) or "clean_accuracy" not in entry:
        st.caption(f"Not measured for {card.version}. `python bench/bench_robustness.py --record-in "
                   f"{card.version}` measures it (with `--checkpoint` for a model that never trained on the "
                   "valid split).")
        return
    goal = entry.get("goal_drop_points", 5.0)
    drop = float(entry["mean_drop_points"])
    st.markdown(f"Mean drop from clean: **{drop:.1f} points** (goal ≤ {goal:g}; "
                f"{'met' if drop <= goal else 'not met'}), worst not-music rate "
                f"**{float(entry.get('worst_not_music_rate', 0.0)):.0%}** under any change (goal ≤ 5 %).")
    table = robustness_table(entry)
    st.dataframe(table, hide_index=True, height=ROW_PX * (len(table) + 1) + 3, column_config={
        "accuracy": st.column_config.ProgressColumn("accuracy", format="percent", min_value=0, max_value=1)})
    who = ("the same recipe trained on train alone, so it never heard them" if entry.get("selection_model")
           else "the checkpoint the command names")
    st.caption(f"The {entry.get('clips', '?')} valid-list gtzan_mini clips through the real engine, clean and "
               f"changed, by {entry.get('evaluated_model', '?')}: {who}. The context rows change pitch and tempo "
               "together by resampling, without the phase vocoder, and stay out of the mean. "
               f"Command: `{entry.get('command', '?')}`")
