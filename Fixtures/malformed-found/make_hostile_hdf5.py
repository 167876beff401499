"""Writes hostile_huge_dataset.h5: a few KB on disk, a dataset that claims 2^40 float32 values.

The dataset is chunked and compressed with no chunk ever written, so HDF5 reads it as its fill
value: legal, tiny, and a reader that allocates the whole dataset up front asks for 4 TiB.
Run from this folder: python3 make_hostile_hdf5.py
"""
import h5py

with h5py.File("hostile_huge_dataset.h5", "w", libver="earliest") as f:
    f.create_dataset("dense/kernel", shape=(1 << 20, 1 << 20), dtype="<f4",
                     chunks=(64, 64), compression="gzip")
