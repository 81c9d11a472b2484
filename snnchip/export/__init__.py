"""export/"""
