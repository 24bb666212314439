"""fer-lab: facial expression recognition on FER2013. Run with ``streamlit run streamlit_app.py``."""

import streamlit as st

from fer_app import widgets

navigation = st.navigation([
    st.Page("pages/predict.py", title="Predict", icon=":material/photo_camera:", default=True),
    st.Page("pages/video.py", title="Video", icon=":material/movie:"),
    st.Page("pages/your_photos.py", title="Your photos", icon=":material/folder_zip:"),
    st.Page("pages/errors.py", title="Errors", icon=":material/grid_on:"),
    st.Page("pages/map.py", title="Map", icon=":material/scatter_plot:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("pages/dataset.py", title="Dataset", icon=":material/photo_library:"),
    st.Page("pages/model.py", title="Model", icon=":material/model_training:"),
    st.Page("pages/label_issues.py", title="Label issues", icon=":material/rule:"),
])
with widgets.app_frame():
    navigation.run()
