using static TorchSharp.torch;

namespace NativeVae.Oracle.Wan;

/// <summary>
/// Wan 2.2's pixel shuffles on video tensors <c>[B, C, T, H, W]</c> as diffusers' <c>autoencoder_kl_wan.py</c> writes
/// them, with view, permute, repeat_interleave and mean: <c>AvgDown3D</c>, <c>DupUp3D</c>, <c>patchify</c>,
/// <c>unpatchify</c>. The op fixtures and the Wan 2.2 model oracle both use these.
/// </summary>
internal static class WanShuffles
{
    public static Tensor AvgDown3D(Tensor x, int outChannels, int ft, int fs)
    {
        long padT = (ft - x.shape[2] % ft) % ft;
        x = nn.functional.pad(x, [0, 0, 0, 0, padT, 0]);
        long b = x.shape[0], c = x.shape[1], t = x.shape[2], h = x.shape[3], w = x.shape[4];
        int factor = ft * fs * fs;
        long group = c * factor / outChannels;
        x = x.view(b, c, t / ft, ft, h / fs, fs, w / fs, fs).permute(0, 1, 3, 5, 7, 2, 4, 6).contiguous();
        x = x.view(b, c * factor, t / ft, h / fs, w / fs).view(b, outChannels, group, t / ft, h / fs, w / fs);
        return x.mean([2]);
    }

    public static Tensor DupUp3D(Tensor x, int outChannels, int ft, int fs, bool firstChunk)
    {
        long factor = ft * fs * fs, repeats = outChannels * factor / x.shape[1];
        x = x.repeat_interleave(repeats, 1);
        long b = x.shape[0], t = x.shape[2], h = x.shape[3], w = x.shape[4];
        x = x.view(b, outChannels, ft, fs, fs, t, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4).contiguous();
        x = x.view(b, outChannels, t * ft, h * fs, w * fs);
        return firstChunk ? x.narrow(2, ft - 1, x.shape[2] - (ft - 1)) : x;
    }

    public static Tensor Patchify(Tensor x, int p)
    {
        long b = x.shape[0], c = x.shape[1], f = x.shape[2], h = x.shape[3], w = x.shape[4];
        x = x.view(b, c, f, h / p, p, w / p, p).permute(0, 1, 6, 4, 2, 3, 5).contiguous();
        return x.view(b, c * p * p, f, h / p, w / p);
    }

    public static Tensor Unpatchify(Tensor x, int p)
    {
        long b = x.shape[0], cp = x.shape[1], f = x.shape[2], h = x.shape[3], w = x.shape[4];
        x = x.view(b, cp / (p * p), p, p, f, h, w).permute(0, 1, 4, 5, 3, 6, 2).contiguous();
        return x.view(b, cp / (p * p), f, h * p, w * p);
    }
}
