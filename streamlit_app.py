"""fer-lab: facial expression recognition on FER2013. Run with ``streamlit run streamlit_app.py``."""

import streamlit as st

from fer_app import widgets

# No page icons: the browser fetches a Material page icon from Google's font server for the tab
# (a third-party request), and an emoji draws as an empty box where no emoji font is installed.
navigation = st.navigation([
    st.Page("pages/predict.py", title="Predict", default=True),
    st.Page("pages/video.py", title="Video"),
    st.Page("pages/your_photos.py", title="Your photos"),
    st.Page("pages/errors.py", title="Errors"),
    st.Page("pages/map.py", title="Map"),
    st.Page("pages/compare.py", title="Compare"),
    st.Page("pages/dataset.py", title="Dataset"),
    st.Page("pages/model.py", title="Model"),
    st.Page("pages/label_issues.py", title="Label issues"),
])
with widgets.app_frame():
    navigation.run()
