"""The app's pages. Each file is a page script that `st.navigation` runs; a package only so installs ship it."""
