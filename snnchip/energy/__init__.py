"""energy/"""
