"""The official ByteTrack's scores on the six shared MOT15 sequences: the reference both parity tests check.

Run of the official implementation (track_thresh 0.6, match_thresh 0.9, track_buffer 30, frame rate from
seqinfo.ini, public detections, tracker not called on frames without detections, boxes written as the official
``write_results`` does: 1-decimal boxes, 2-decimal scores, kept if w*h > 100 and w/h <= 1.6), scored by TrackEval with
MOT15 settings. Values are (HOTA, MOTA, IDF1) in percent, given to 2 decimals.
"""

from pathlib import Path

# CI clones the repository with shared/ beside it
SHARED_MOT15 = Path(__file__).resolve().parents[2] / "shared" / "data" / "mot15"

OFFICIAL_PER_SEQUENCE = {
    "TUD-Campus": (51.36, 61.28, 71.32),
    "TUD-Stadtmitte": (53.73, 69.90, 75.77),
    "PETS09-S2L1": (37.50, 63.07, 47.40),
    "KITTI-13": (29.90, 7.35, 41.58),
    "ADL-Rundle-6": (35.39, 37.59, 49.39),
    "ETH-Pedcross2": (39.74, 45.23, 54.15),
}
OFFICIAL_COMBINED = {"HOTA": 38.89, "MOTA": 47.84, "IDF1": 52.17}
