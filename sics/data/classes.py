"""The CIFAR-10 class names, in label order (torch-free: models and tables read them)."""

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
