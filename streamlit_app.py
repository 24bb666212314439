"""fer-lab: facial expression recognition on FER2013. Run with ``streamlit run streamlit_app.py``."""

import streamlit as st

from fer_app import widgets

# Emoji, not Material icons: the browser fetches a Material page icon from Google's font server
# for the tab (a third-party request); an emoji is drawn locally.
navigation = st.navigation([
    st.Page("pages/predict.py", title="Predict", icon="📷", default=True),
    st.Page("pages/video.py", title="Video", icon="🎬"),
    st.Page("pages/your_photos.py", title="Your photos", icon="🗂️"),
    st.Page("pages/errors.py", title="Errors", icon="🧮"),
    st.Page("pages/map.py", title="Map", icon="🗺️"),
    st.Page("pages/compare.py", title="Compare", icon="⚖️"),
    st.Page("pages/dataset.py", title="Dataset", icon="🖼️"),
    st.Page("pages/model.py", title="Model", icon="🧠"),
    st.Page("pages/label_issues.py", title="Label issues", icon="🏷️"),
])
with widgets.app_frame():
    navigation.run()
