"""The Streamlit app's side of fer-lab: cached resources, shared widgets and charts.

``fer/`` holds the logic and never imports streamlit; this package is where streamlit meets it.
"""
