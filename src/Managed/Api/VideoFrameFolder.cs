using NativeVae.Api;
using NativeVae.Core;
using NativeVae.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace NativeVae;

/// <summary>
/// A video as a folder of frames: the image files in it (PNG, JPEG, WebP, BMP) in ordinal name order, all one size,
/// as the video tensor <c>[1, 3, T, H, W]</c> in [-1, 1] that <see cref="Vae.EncodeVideo"/> takes; and back, a decoded
/// video written as <c>frame_00000.png</c>, <c>frame_00001.png</c>, ...
/// </summary>
public static class VideoFrameFolder
{
    /// <summary>The extensions read as frames.</summary>
    public static readonly IReadOnlyList<string> FrameExtensions = [".png", ".jpg", ".jpeg", ".webp", ".bmp"];

    /// <summary>The name of frame t in a written folder: frame_00000.png, ...</summary>
    public static string FrameName(int t) => $"frame_{t:D5}.png";

    /// <summary>The frame files of <paramref name="folder"/>, sorted by name.</summary>
    /// <exception cref="DirectoryNotFoundException">no such folder.</exception>
    /// <exception cref="InvalidDataException">no frames in it.</exception>
    public static IReadOnlyList<string> Files(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: no such frame folder");
        var files = Directory.EnumerateFiles(folder)
            .Where(f => FrameExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0)
            throw new InvalidDataException($"{folder}: holds no frames ({string.Join(", ", FrameExtensions)} files)");
        return files;
    }

    /// <summary>
    /// The first <paramref name="maxFrames"/> frames (all when null) as <c>[1, 3, T, H, W]</c> in [-1, 1]; the size is
    /// checked on every frame before its pixels are read.
    /// </summary>
    /// <exception cref="InvalidDataException">no frames, a frame that is not an accepted image or over the pixel cap, or frames of different sizes.</exception>
    public static HostTensor<float> Read(string folder, long maxPixels = ImageFiles.DefaultMaxPixels, int? maxFrames = null)
    {
        var files = Files(folder);
        if (maxFrames is { } max) files = files.Take(max).ToList();
        HostTensor<float>? video = null;
        float[]? frame = null;
        string first = files[0];
        for (int t = 0; t < files.Count; t++)
        {
            using var image = ImageInput.Load(files[t], maxPixels);
            if (video is null)
            {
                video = new HostTensor<float>(new TensorShape(1, OpShapes.RgbChannels, files.Count, image.Height, image.Width));
                frame = new float[(long)OpShapes.RgbChannels * image.Height * image.Width];
            }
            else if (image.Width != video.Shape[4] || image.Height != video.Shape[3])
                throw new InvalidDataException(
                    $"{files[t]}: frame {t} is {image.Width}x{image.Height}, but the first, {Path.GetFileName(first)}, is " +
                    $"{video.Shape[4]}x{video.Shape[3]}: every frame of a video must be one size");
            PixelConversion.ToPlanes(ImageInput.ToBytes(image), frame!);
            VideoFrames.Write(video, t, frame);
        }
        return video!;
    }

    /// <summary>Writes a video <c>[1, 3, T, H, W]</c> in [-1, 1] as PNG frames into <paramref name="folder"/> (created); the paths written.</summary>
    /// <exception cref="ArgumentException">not one video of 3 channels.</exception>
    public static IReadOnlyList<string> Write(HostTensor<float> video, string folder)
    {
        var s = video.Shape;
        if (s.Rank != VideoFrames.Rank || s[0] != 1 || s[1] != OpShapes.RgbChannels)
            throw new ArgumentException($"a frame folder holds one video [1, 3, T, H, W], got {s}");
        Directory.CreateDirectory(folder);
        var paths = new List<string>();
        VideoFrames.ForEachRgbFrame(video, (_, t, rgb) =>
        {
            using var image = ImageOutput.FromBytes(rgb, s[4], s[3]);
            string path = Path.Combine(folder, FrameName(t));
            ImageOutput.Save(image, path);
            paths.Add(path);
        });
        return paths;
    }
}
