"""Views: plain functions of (context, control values) that return what a callback shows —
figures, table rows, text, cards. Pages wire them to Dash; tests call them directly.
"""
