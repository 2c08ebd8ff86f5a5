"""The column-layout kernels of symdl.ops.runtime (a batch of images as the matrix (C·H·W, N),
one example per column) for a backend that has the image-layout (N, C, H, W) kernels: each one
reads its columns as images, calls the backend's kernel, and writes columns back."""

from __future__ import annotations

from collections.abc import Callable


def _out_size(size, window, stride, padding=0):
    return (size + 2 * padding - window) // stride + 1


class ColumnLayout:
    """`conv2d_columns`, `max_pool2d_columns`, ... on `kernels` (a module with conv2d,
    conv2d_grad_input, conv2d_grad_kernel, max_pool2d(_grad), avg_pool2d(_grad)); `permute`
    reorders an array's axes in that backend."""

    def __init__(self, kernels, permute: Callable):
        self.kernels, self.permute = kernels, permute

    def _images(self, X, image):  # (C·H·W, N) -> (N, C, H, W)
        c, h, w = image
        return self.permute(X.reshape(c, h, w, X.shape[1]), (3, 0, 1, 2))

    def _grad_images(self, G, channels, out_hw):  # (F·Ho·Wo, N) -> (N, F, Ho, Wo)
        return self.permute(G.reshape(channels, *out_hw, G.shape[1]), (3, 0, 1, 2))

    def _columns(self, y):  # (N, F, Ho, Wo) -> (F·Ho·Wo, N)
        return self.permute(y, (1, 2, 3, 0)).reshape(-1, y.shape[0])

    @staticmethod
    def _conv_out(image, window, stride, padding):
        return tuple(_out_size(image[i + 1], window[i], stride[i], padding[i]) for i in (0, 1))

    def conv2d_columns(self, X, K, image, window, stride=(1, 1), padding=(0, 0), bias=None):
        k = K.reshape(K.shape[0], image[0], *window)
        y = self.kernels.conv2d(self._images(X, image), k, stride, padding)
        if bias is not None:
            y = y + bias.reshape(1, -1, 1, 1)
        return self._columns(y)

    # the window matrix of NumPy's kernels is the images themselves here: the backend's own
    # convolution and its kernel gradient read them
    def conv2d_windows(self, X, image, window, stride=(1, 1), padding=(0, 0)):
        return X

    def conv2d_windowed(self, X, K, image, window, stride=(1, 1), padding=(0, 0), bias=None):
        return self.conv2d_columns(X, K, image, window, stride, padding, bias)

    def conv2d_windowed_grad_kernel(self, G, X, image, window, stride=(1, 1), padding=(0, 0)):
        return self.conv2d_columns_grad_kernel(G, X, image, window, stride, padding)

    def conv2d_columns_grad_kernel(self, G, X, image, window, stride=(1, 1), padding=(0, 0)):
        out = self._conv_out(image, window, stride, padding)
        g = self._grad_images(G, G.shape[0] // (out[0] * out[1]), out)
        shape = (g.shape[1], image[0], *window)
        dk = self.kernels.conv2d_grad_kernel(g, self._images(X, image), shape, stride, padding)
        return dk.reshape(shape[0], -1)

    def conv2d_columns_grad_input(self, G, K, image, window, stride=(1, 1), padding=(0, 0)):
        out = self._conv_out(image, window, stride, padding)
        g = self._grad_images(G, K.shape[0], out)
        k = K.reshape(K.shape[0], image[0], *window)
        shape = (G.shape[1], *image)
        return self._columns(self.kernels.conv2d_grad_input(g, k, shape, stride, padding))

    def max_pool2d_columns(self, X, image, window, stride):
        return self._columns(self.kernels.max_pool2d(self._images(X, image), window, stride))

    def max_pool2d_columns_grad(self, G, X, Y, image, window, stride):
        # Y, the pooled output, is for NumPy's kernel; the backend's own finds the maxima
        out = self._conv_out(image, window, stride, (0, 0))
        g = self._grad_images(G, image[0], out)
        dx = self.kernels.max_pool2d_grad(g, self._images(X, image), window, stride)
        return self._columns(dx)

    def avg_pool2d_columns(self, X, image, window, stride):
        return self._columns(self.kernels.avg_pool2d(self._images(X, image), window, stride))

    def avg_pool2d_columns_grad(self, G, image, window, stride):
        out = self._conv_out(image, window, stride, (0, 0))
        g = self._grad_images(G, image[0], out)
        shape = (G.shape[1], *image)
        return self._columns(self.kernels.avg_pool2d_grad(g, shape, window, stride))

    def exported(self) -> dict[str, Callable]:
        """The kernels by the names generated code calls."""
        names = [n for n in dir(self) if n.endswith(("_columns", "_columns_grad"))]
        names += ["conv2d_columns_grad_kernel", "conv2d_columns_grad_input", "conv2d_windows"]
        names += ["conv2d_windowed", "conv2d_windowed_grad_kernel"]
        return {n: getattr(self, n) for n in dict.fromkeys(names)}
