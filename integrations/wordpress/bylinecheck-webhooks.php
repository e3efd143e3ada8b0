<?php
/**
 * Plugin Name:       bylinecheck webhooks
 * Description:       Asks bylinecheck to check a post (text, byline, author headshot) whenever its status changes. Each
 *                    request is signed with the Standard Webhooks scheme (webhook-id, webhook-timestamp, webhook-signature).
 * Version:           0.1.0
 * Requires at least: 6.0
 * Requires PHP:      7.4
 * License:           Apache-2.0
 *
 * Configure in wp-config.php:
 *   define( 'BYLINECHECK_WEBHOOK_URL', 'https://bylinecheck.example/v1/webhooks/wordpress' );
 *   define( 'BYLINECHECK_WEBHOOK_SECRET', 'whsec_...' ); // the same secret as in BYLINECHECK_WEBHOOK_SECRETS
 *
 * Optional: a user meta field 'bylinecheck_headshot_url' overrides the Gravatar as the author's headshot.
 * Sending happens in WP-Cron (never in the editor's save request) and is retried with backoff up to 5 times;
 * the webhook-id is derived from site, post, status and modification time, so retries and double hooks
 * are deduplicated by bylinecheck.
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

const BYLINECHECK_MAX_ATTEMPTS = 5;

/**
 * Standard Webhooks signature: base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), key = base64-decoded secret.
 */
function bylinecheck_signature( string $secret, string $msg_id, int $timestamp, string $body ): string {
	if ( strpos( $secret, 'whsec_' ) !== 0 ) {
		throw new InvalidArgumentException( 'BYLINECHECK_WEBHOOK_SECRET must start with whsec_' );
	}
	$key = base64_decode( substr( $secret, 6 ), true );
	if ( false === $key ) {
		throw new InvalidArgumentException( 'BYLINECHECK_WEBHOOK_SECRET is not base64 after whsec_' );
	}
	return 'v1,' . base64_encode( hash_hmac( 'sha256', $msg_id . '.' . $timestamp . '.' . $body, $key, true ) );
}

function bylinecheck_author( WP_Post $post ): array {
	$author_id = (int) $post->post_author;
	$headshot  = get_user_meta( $author_id, 'bylinecheck_headshot_url', true );
	return array(
		'id'           => $author_id,
		'name'         => get_the_author_meta( 'display_name', $author_id ),
		'headshot_url' => $headshot ? esc_url_raw( $headshot ) : null,
		// 'default' => '404': no Gravatar means no headshot (bylinecheck then checks the text only).
		'avatar_url'   => get_avatar_url( $author_id, array( 'size' => 512, 'default' => '404' ) ),
	);
}

function bylinecheck_on_transition( string $new_status, string $old_status, WP_Post $post ): void {
	if ( ! defined( 'BYLINECHECK_WEBHOOK_URL' ) || ! defined( 'BYLINECHECK_WEBHOOK_SECRET' ) ) {
		return;
	}
	if ( wp_is_post_revision( $post ) || wp_is_post_autosave( $post ) ) {
		return;
	}
	if ( ! in_array( $post->post_type, apply_filters( 'bylinecheck_post_types', array( 'post' ) ), true ) ) {
		return;
	}
	if ( ! in_array( $new_status, apply_filters( 'bylinecheck_statuses', array( 'draft', 'pending', 'future', 'publish' ) ), true ) ) {
		return;
	}
	$body   = wp_json_encode(
		array(
			'type'      => 'post.' . $new_status,
			'timestamp' => time(),
			'data'      => array(
				'site_url'   => home_url(),
				'old_status' => $old_status,
				'post'       => array(
					'id'           => $post->ID,
					'title'        => get_the_title( $post ),
					'content'      => apply_filters( 'the_content', $post->post_content ),
					'url'          => get_permalink( $post ),
					'status'       => $new_status,
					'modified_gmt' => $post->post_modified_gmt,
				),
				'author'     => bylinecheck_author( $post ),
			),
		)
	);
	$msg_id = 'wp_' . substr( hash( 'sha256', home_url() . '|' . $post->ID . '|' . $new_status . '|' . $post->post_modified_gmt ), 0, 40 );
	wp_schedule_single_event( time(), 'bylinecheck_send', array( $msg_id, $body, 1 ) );
}
add_action( 'transition_post_status', 'bylinecheck_on_transition', 10, 3 );

/**
 * WP-Cron job: POST the signed body; on a transport error or a 429/5xx answer, try again later.
 */
function bylinecheck_send( string $msg_id, string $body, int $attempt ): void {
	$timestamp = time();
	$response  = wp_remote_post(
		BYLINECHECK_WEBHOOK_URL,
		array(
			'timeout'     => 10,
			'redirection' => 0,
			'data_format' => 'body',
			'body'        => $body,
			'headers'     => array(
				'content-type'      => 'application/json',
				'webhook-id'        => $msg_id,
				'webhook-timestamp' => (string) $timestamp,
				'webhook-signature' => bylinecheck_signature( BYLINECHECK_WEBHOOK_SECRET, $msg_id, $timestamp, $body ),
			),
		)
	);
	$code  = is_wp_error( $response ) ? 0 : (int) wp_remote_retrieve_response_code( $response );
	$retry = 0 === $code || 429 === $code || $code >= 500;
	if ( $retry && $attempt < BYLINECHECK_MAX_ATTEMPTS ) {
		$delay = (int) ( 60 * ( 2 ** ( $attempt - 1 ) ) * ( 0.5 + wp_rand( 0, 500 ) / 1000 ) );
		wp_schedule_single_event( time() + $delay, 'bylinecheck_send', array( $msg_id, $body, $attempt + 1 ) );
	}
}
add_action( 'bylinecheck_send', 'bylinecheck_send', 10, 3 );
