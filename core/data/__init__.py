"""Data: MNIST (mnist), folders of class subfolders and their splits (folders), decoding image files safely
(images), preparing a user's own digit like an MNIST digit (digits), one image as a stored model takes it (feed)."""
