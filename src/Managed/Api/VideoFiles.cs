using FFMpegCore;
using FFMpegCore.Exceptions;
using NativeVae.Api;
using NativeVae.Core;

namespace NativeVae;

/// <summary>
/// Video files (MP4 and what else ffmpeg reads) as video tensors <c>[1, 3, T, H, W]</c> in [-1, 1], and decoded videos
/// written as H.264 MP4 (yuv420p). Driven through the system's <c>ffmpeg</c> and <c>ffprobe</c> (FFMpegCore); without
/// them, video files are refused with a message that says how to install them, while frame folders
/// (<see cref="VideoFrameFolder"/>) always work.
/// </summary>
public static class VideoFiles
{
    /// <summary>The extensions taken for video files.</summary>
    public static readonly IReadOnlyList<string> Extensions = [".mp4", ".mkv", ".mov", ".webm", ".avi"];

    /// <summary>The frame rate written when none is given: Wan's pipelines export at 16 fps.</summary>
    public const double DefaultFps = 16;

    /// <summary>The most decoded bytes (8-bit RGB) a video file may expand to in memory (4 GiB); --frames takes fewer.</summary>
    public const long MaxDecodedBytes = 4L << 30;

    private const int RgbBytes = 3;
    private const float PixelMax = 255f;

    /// <summary>Whether <paramref name="path"/> has a video file's extension.</summary>
    public static bool IsVideoFile(string path) => Extensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>
    /// Frames of the video file (the first <paramref name="maxFrames"/>, all when null) as <c>[1, 3, T, H, W]</c> in
    /// [-1, 1], and its frame rate. Size and length are checked from ffprobe's header before anything is decoded.
    /// </summary>
    /// <exception cref="FileNotFoundException">no file at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidOperationException">ffmpeg or ffprobe is not installed; the message says how to install it.</exception>
    /// <exception cref="InvalidDataException">ffmpeg cannot read the file, it has no video stream, or its frames are over the limits.</exception>
    public static (HostTensor<float> Video, double Fps) Read(string path, long maxPixels = ImageFiles.DefaultMaxPixels, int? maxFrames = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such video file", path);
        RequireFfmpeg();
        IMediaAnalysis analysis;
        try
        {
            analysis = FFProbe.Analyse(path);
        }
        catch (Exception e) when (e is FFMpegException or FormatException or System.Text.Json.JsonException)
        {
            throw new InvalidDataException($"{path}: ffmpeg cannot read it as a video ({FirstLine(e.Message)})", e);
        }
        var stream = analysis.PrimaryVideoStream ?? throw new InvalidDataException($"{path}: holds no video stream");
        int width = stream.Width ?? 0, height = stream.Height ?? 0;
        if (width <= 0 || height <= 0) throw new InvalidDataException($"{path}: its video stream has no frame size");
        if ((long)width * height > maxPixels)
            throw new InvalidDataException($"{path}: frames of {width}x{height} exceed the limit of {maxPixels} pixels");
        double fps = FrameRate(stream);
        long frameBytes = (long)width * height * RgbBytes;
        double seconds = Math.Max(analysis.Duration.TotalSeconds, stream.Duration.TotalSeconds);
        long expected = maxFrames ?? (long)Math.Ceiling(seconds * fps);
        if (expected * frameBytes > MaxDecodedBytes)
            throw new InvalidDataException(
                $"{path}: about {expected} frames of {width}x{height} would decode to {expected * frameBytes} bytes, over {MaxDecodedBytes}; take fewer frames (--frames)");

        // Through a temporary raw file, not a pipe: FFMpegCore's pipes can lose the race with a short ffmpeg run.
        string rawPath = Path.Combine(Path.GetTempPath(), $"nativevae-{Guid.NewGuid():N}.rgb");
        try
        {
            try
            {
                FFMpegArguments.FromFileInput(path).OutputToFile(rawPath, overwrite: true, o =>
                {
                    o.ForceFormat("rawvideo").WithCustomArgument("-pix_fmt rgb24");
                    if (maxFrames is { } n) o.WithCustomArgument($"-frames:v {n}");
                }).ProcessSynchronously();
            }
            catch (FFMpegException e)
            {
                throw new InvalidDataException($"{path}: ffmpeg cannot decode it ({FirstLine(e.Message)})", e);
            }
            using var raw = File.OpenRead(rawPath);
            int frames = checked((int)(raw.Length / frameBytes));
            if (frames == 0) throw new InvalidDataException($"{path}: ffmpeg decoded no frames from it");
            var video = new HostTensor<float>(new TensorShape(1, OpShapes.RgbChannels, frames, height, width));
            var bytes = new byte[frameBytes];
            var planes = new float[frameBytes];
            for (int t = 0; t < frames; t++)
            {
                raw.ReadExactly(bytes);
                PixelConversion.ToPlanes(bytes, planes);
                VideoFrames.Write(video, t, planes);
            }
            return (video, fps);
        }
        finally
        {
            File.Delete(rawPath);
        }
    }

    /// <summary>Writes a video <c>[1, 3, T, H, W]</c> in [-1, 1] as an H.264 MP4 (yuv420p) at <paramref name="fps"/>, atomically.</summary>
    /// <exception cref="ArgumentException">not one video of 3 channels, odd sides (yuv420p halves them), or a frame rate that is not positive.</exception>
    /// <exception cref="InvalidOperationException">ffmpeg is not installed, or it failed.</exception>
    public static void WriteMp4(HostTensor<float> video, string path, double fps = DefaultFps)
    {
        var s = video.Shape;
        if (s.Rank != VideoFrames.Rank || s[0] != 1 || s[1] != OpShapes.RgbChannels)
            throw new ArgumentException($"an MP4 holds one video [1, 3, T, H, W], got {s}");
        if (s[3] % 2 != 0 || s[4] % 2 != 0) throw new ArgumentException($"video {s}: yuv420p needs even sides");
        if (!(fps > 0) || double.IsInfinity(fps)) throw new ArgumentException($"fps {fps} must be a positive number");
        RequireFfmpeg();
        string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        string temporary = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.mp4");
        // The frames go to ffmpeg as a temporary raw file, not a pipe (see Read).
        string rawPath = Path.Combine(Path.GetTempPath(), $"nativevae-{Guid.NewGuid():N}.rgb");
        try
        {
            WriteRaw(video, rawPath);
            string rate = fps.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
            FFMpegArguments
                .FromFileInput(rawPath, verifyExists: true, o => o.ForceFormat("rawvideo").WithCustomArgument($"-pix_fmt rgb24 -s {s[4]}x{s[3]} -r {rate}"))
                .OutputToFile(temporary, overwrite: true, o => o.WithVideoCodec("libx264").WithCustomArgument("-pix_fmt yuv420p").ForceFormat("mp4"))
                .ProcessSynchronously();
            File.Move(temporary, path, overwrite: true);
        }
        catch (FFMpegException e)
        {
            throw new InvalidOperationException($"{path}: ffmpeg could not write the MP4 ({FirstLine(e.Message)})", e);
        }
        finally
        {
            File.Delete(temporary);
            File.Delete(rawPath);
        }
    }

    /// <summary>The bytes of the MP4 <see cref="WriteMp4"/> writes (through a temporary file: MP4 needs a seekable output).</summary>
    /// <exception cref="ArgumentException">as <see cref="WriteMp4"/>.</exception>
    /// <exception cref="InvalidOperationException">as <see cref="WriteMp4"/>.</exception>
    public static byte[] EncodeMp4(HostTensor<float> video, double fps = DefaultFps)
    {
        string path = Path.Combine(Path.GetTempPath(), $"nativevae-{Guid.NewGuid():N}.mp4");
        try
        {
            WriteMp4(video, path, fps);
            return File.ReadAllBytes(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>The frame count, size and frame rate of a video file, from ffprobe.</summary>
    /// <exception cref="InvalidOperationException">ffprobe is not installed.</exception>
    /// <exception cref="InvalidDataException">ffprobe cannot read the file.</exception>
    public static (int Frames, int Width, int Height, double Fps) Probe(string path)
    {
        RequireFfmpeg();
        try
        {
            var stream = FFProbe.Analyse(path).PrimaryVideoStream ?? throw new InvalidDataException($"{path}: holds no video stream");
            int frames = FFProbe.GetFrames(path).Frames.Count(f => f.MediaType == "video");
            return (frames, stream.Width ?? 0, stream.Height ?? 0, FrameRate(stream));
        }
        catch (Exception e) when (e is FFMpegException or FormatException or System.Text.Json.JsonException)
        {
            throw new InvalidDataException($"{path}: ffprobe cannot read it ({FirstLine(e.Message)})", e);
        }
    }

    /// <summary>Whether ffmpeg and ffprobe are on the PATH.</summary>
    public static bool FfmpegAvailable => MissingTool(Environment.GetEnvironmentVariable("PATH")) is null;

    /// <summary>The refusal when a tool is missing from <paramref name="searchPath"/>, or null when both are there.</summary>
    internal static string? MissingTool(string? searchPath)
    {
        foreach (string tool in new[] { "ffmpeg", "ffprobe" })
        {
            bool found = (searchPath ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
                .Any(dir => File.Exists(Path.Combine(dir, tool)) || File.Exists(Path.Combine(dir, tool + ".exe")));
            if (!found)
                return $"{tool} is not installed (not on PATH), and video files are read and written through it: install ffmpeg " +
                    "(Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg; Windows: winget install Gyan.FFmpeg), " +
                    "or give a folder of frames, which needs no ffmpeg";
        }
        return null;
    }

    private static void RequireFfmpeg()
    {
        if (MissingTool(Environment.GetEnvironmentVariable("PATH")) is { } message) throw new InvalidOperationException(message);
    }

    /// <summary>The frames as 8-bit RGB, one after the other, in a file.</summary>
    private static void WriteRaw(HostTensor<float> video, string rawPath)
    {
        using var raw = File.Create(rawPath);
        VideoFrames.ForEachRgbFrame(video, (_, _, rgb) => raw.Write(rgb));
    }

    /// <summary>The stream's average frame rate, else its base rate, else <see cref="DefaultFps"/>.</summary>
    private static double FrameRate(VideoStream stream) =>
        stream.AverageFrameRate > 0 && double.IsFinite(stream.AverageFrameRate) ? stream.AverageFrameRate
        : stream.RealFrameRate > 0 && double.IsFinite(stream.RealFrameRate) ? stream.RealFrameRate
        : DefaultFps;

    private static string FirstLine(string message) => message.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault()?.Trim() ?? "";
}
