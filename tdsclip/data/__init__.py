"""The video data pipeline: annotations, decoding, sampling, augmentation, datasets, tools.

    python -m tdsclip.data synth|extract|resize|check|subsets ...

Modules, one job each: annotations (the datasets' own files), manifest (what a run saw, hashed),
video (decord / JPEG decoding that decodes no more than it must), sampling (TSN segments and SME
windows), transforms (Table XIII augmentation), dataset (torch Dataset, collate, failure counts),
subsets, synth, extract, resize (a lighter copy of a video tree), check, reference (a dataset
compared with a shared list). Importing this package imports none of them.
"""
