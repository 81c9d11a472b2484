"""train/"""
